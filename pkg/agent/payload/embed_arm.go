package payload

import "embed"

// The payload of this architecture's build (`make payload ARCH=arm`).
//
//go:embed assets/arm
var assets embed.FS

const assetsDir = "assets/arm"
