package hostcheck

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Route is one IPv4 route of the host.
type Route struct {
	Interface string
	Dest      netip.Prefix
}

// ParseProcNetRoute reads the kernel's IPv4 routing table in the format of
// /proc/net/route.
func ParseProcNetRoute(r io.Reader) ([]Route, error) {
	var routes []Route
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue // header
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		dest, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("malformed route line %q", sc.Text())
		}
		var d, m [4]byte
		// /proc/net/route prints addresses in host (little-endian) order.
		binary.LittleEndian.PutUint32(d[:], uint32(dest))
		binary.LittleEndian.PutUint32(m[:], uint32(mask))
		bits := 0
		for _, b := range m {
			for i := 7; i >= 0; i-- {
				if b&(1<<i) != 0 {
					bits++
				}
			}
		}
		if binary.BigEndian.Uint32(m[:]) != ^uint32(0)<<(32-bits) {
			return nil, fmt.Errorf("malformed route line %q: the mask is not a prefix length", sc.Text())
		}
		routes = append(routes, Route{Interface: f[0], Dest: netip.PrefixFrom(netip.AddrFrom4(d), bits).Masked()})
	}
	return routes, sc.Err()
}

// isOwnInterface tells the interfaces kubling itself creates; their routes
// lie inside the cluster CIDR on purpose and must not count as conflicts.
func isOwnInterface(name string) bool {
	switch name {
	case "cni0", "flannel.1", "flannel-wg", "kube-ipvs0":
		return true
	}
	return false
}

// CheckRouteOverlap returns an error naming the first host route (other than
// the default route and kubling's own) that overlaps the given network.
func CheckRouteOverlap(flag string, network netip.Prefix, routes []Route) error {
	for _, r := range routes {
		if r.Dest.Bits() == 0 || isOwnInterface(r.Interface) {
			continue
		}
		if r.Dest.Overlaps(network) {
			return fmt.Errorf("%s %s overlaps the host route %s on %s; choose another range", flag, network, r.Dest, r.Interface)
		}
	}
	return nil
}

// Routes reads the host's IPv4 routes.
func (r Host) Routes() ([]Route, error) {
	f, err := os.Open(r.path("/proc/net/route"))
	if err != nil {
		return nil, fmt.Errorf("read host routes: %w", err)
	}
	defer f.Close()
	return ParseProcNetRoute(f)
}

// Network is an address range kubling will use, and the flag that set it.
type Network struct {
	Flag   string
	Prefix netip.Prefix
}

// NetworksClear refuses the first network that overlaps a host route.
func (r Host) NetworksClear(nets ...Network) error {
	routes, err := r.Routes()
	if err != nil {
		return err
	}
	for _, n := range nets {
		if err := CheckRouteOverlap(n.Flag, n.Prefix, routes); err != nil {
			return err
		}
	}
	return nil
}
