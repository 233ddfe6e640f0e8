package hostcheck

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseProcNetRoute: /proc/net/route as a host (or a fake tree) gives
// it. It parses or fails, never panics. When it parses: one route per line
// after the header with at least 8 fields, in order; each names its
// interface and has a valid, masked IPv4 prefix whose address is the
// line's destination under the line's mask and whose netmask is the
// line's mask (a mask with holes is malformed); written back in the
// kernel's format the routes parse to the same; and the overlap check
// agrees with netip's Overlaps.
func FuzzParseProcNetRoute(f *testing.F) {
	f.Add([]byte(procNetRoute))
	for _, s := range []string{
		"",
		"Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
		"Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0",
		"header\nlo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\r\n",
		"header\neth0\t0101A8C0\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n",
		"header\neth0\t0164A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", // host bits set
		"header\neth0\t00000000\t00000000\t0001\t0\t0\t0\tFF00FFFF\t0\t0\t0\n", // mask with a hole
		"header\neth0\t00000000\t00000000\t0001\t0\t0\t0\t00FF0000\t0\t0\t0\n",
		"header\neth0\t0000A8C0\t00000000\t0001\t0\t0\t0\tZZFFFFFF\t0\t0\t0\n",
		"header\neth0\tGGGGGGGG\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
		"header\neth0\t100000000\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
		"header\neth0\t-1\t00000000\t0001\t0\t0\t0\t+0\t0\t0\t0\n",
		"header\neth0\t0x0000A8C0\t00000000\t0001\t0\t0\t0\t0x00FFFFFF\t0\t0\t0\n",
		"header\neth0\t000000000000A8C0\t00000000\t0001\t0\t0\t0\t0000000000FFFFFF\t0\t0\t0\n",
		"header\neth0 0000A8C0 00000000 0001 0 0 0\n",
		"header\n\n\n   \n",
		"eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", // no header
		"header\ncni0\t00002A0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\nflannel.1\t00002A0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n",
		"header\n" + strings.Repeat("x", 70000) + "\n",
		"header\n\x00\t0\t0\t0\t0\t0\t0\t0\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		routes, err := ParseProcNetRoute(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		// The lines that count, read apart from the parser.
		var lines [][]string
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for first := true; sc.Scan(); first = false {
			if f := strings.Fields(sc.Text()); !first && len(f) >= 8 {
				lines = append(lines, f)
			}
		}
		if len(routes) != len(lines) {
			t.Fatalf("%d routes from %d route lines: %v", len(routes), len(lines), routes)
		}
		var back strings.Builder
		back.WriteString("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n")
		for i, r := range routes {
			if r.Interface != lines[i][0] || r.Interface == "" || strings.ContainsFunc(r.Interface, isSpace) {
				t.Fatalf("route %d: interface %q, line %q", i, r.Interface, lines[i])
			}
			p := r.Dest
			if !p.IsValid() || !p.Addr().Is4() || p.Bits() < 0 || p.Bits() > 32 || p != p.Masked() {
				t.Fatalf("route %d: prefix %v is not a masked IPv4 prefix", i, p)
			}
			dest, _ := strconv.ParseUint(lines[i][1], 16, 32)
			mask, _ := strconv.ParseUint(lines[i][7], 16, 32)
			if got := leUint32(p.Addr()); got != uint32(dest&mask) {
				t.Fatalf("route %d: address %v (%08X), want %08X under mask %08X", i, p.Addr(), got, dest&mask, mask)
			}
			if got := leUint32(netmask(p.Bits())); got != uint32(mask) {
				t.Fatalf("route %d: /%d is mask %08X, the line says %08X", i, p.Bits(), got, mask)
			}
			fmt.Fprintf(&back, "%s\t%08X\t00000000\t0001\t0\t0\t0\t%08X\t0\t0\t0\n", r.Interface, leUint32(p.Addr()), leUint32(netmask(p.Bits())))
		}
		again, err := ParseProcNetRoute(strings.NewReader(back.String()))
		if err != nil || len(again) != len(routes) {
			t.Fatalf("written back:\n%s\nparsed %v, %v", back.String(), again, err)
		}
		for i := range routes {
			if again[i] != routes[i] {
				t.Fatalf("route %d written back and read as %v, was %v", i, again[i], routes[i])
			}
		}
		for _, network := range []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16"), netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("192.168.1.7/32")} {
			want := ""
			for _, r := range routes {
				if r.Dest.Bits() > 0 && !isOwnInterface(r.Interface) && r.Dest.Overlaps(network) {
					want = r.Dest.String() + " on " + r.Interface
					break
				}
			}
			err := CheckRouteOverlap("--cluster-cidr", network, routes)
			if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
				t.Fatalf("%v against %v: %v, want a conflict with %q", network, routes, err, want)
			}
		}
	})
}

func isSpace(r rune) bool { return strings.ContainsRune(" \t\n\v\f\r\u0085\u00a0", r) }

// leUint32 is an IPv4 address as /proc/net/route prints it (host order,
// little-endian here).
func leUint32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.LittleEndian.Uint32(b[:])
}

func netmask(bits int) netip.Addr {
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], ^uint32(0)<<(32-bits)) // 0 for /0
	return netip.AddrFrom4(m)
}
