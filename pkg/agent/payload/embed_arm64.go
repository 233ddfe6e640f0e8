package payload

import "embed"

// The payload of this architecture's build (`make payload ARCH=arm64`).
//
//go:embed assets/arm64
var assets embed.FS

const assetsDir = "assets/arm64"
