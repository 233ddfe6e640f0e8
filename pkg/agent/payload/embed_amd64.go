package payload

import "embed"

// The payload of this architecture's build (`make payload ARCH=amd64`).
//
//go:embed assets/amd64
var assets embed.FS

const assetsDir = "assets/amd64"
