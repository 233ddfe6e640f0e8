package cni

import "net"

// InterfaceMTU is the MTU of the host interface that holds ip (1500 if
// none does).
func InterfaceMTU(ip string) (int, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return 0, err
	}
	want := net.ParseIP(ip)
	for _, iface := range ifaces {
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(want) {
				return iface.MTU, nil
			}
		}
	}
	return 1500, nil
}
