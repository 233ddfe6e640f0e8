package cni

import (
	"net"
	"testing"
)

func TestInterfaceMTU(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no loopback interface here:", err)
	}
	if mtu, err := InterfaceMTU("127.0.0.1"); err != nil || mtu != lo.MTU {
		t.Fatalf("MTU of 127.0.0.1 = %d, %v; lo has %d", mtu, err, lo.MTU)
	}
	if mtu, err := InterfaceMTU("192.0.2.254"); err != nil || mtu != 1500 {
		t.Fatalf("an address no interface holds: %d, %v", mtu, err)
	}
}
