// Package scripts carries the shell scripts kubling installs beside itself,
// so the installer (which may arrive alone, through curl) writes the same
// scripts this repository tests.
package scripts

import _ "embed"

// Killall is kubling-killall.sh.
//
//go:embed kubling-killall.sh
var Killall string

// UninstallBody is the body of kubling-uninstall.sh (install.sh prepends
// the settings it needs).
//
//go:embed kubling-uninstall.sh
var UninstallBody string
