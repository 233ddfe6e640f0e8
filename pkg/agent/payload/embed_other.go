//go:build !amd64 && !arm64 && !arm

package payload

import "embed"

// kubling has no payload for this architecture: Embedded says so.
var assets embed.FS

const assetsDir = "assets/none"
