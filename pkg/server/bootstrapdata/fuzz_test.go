package bootstrapdata

import (
	"encoding/json"
	"testing"
)

// A stored bundle is read from a datastore anyone with its credentials can
// write: Open refuses what it cannot use, and never panics or asks Argon2id
// for more than plausible (0 passes or threads panicked; 4 GiB was taken).
func TestOpenBoundsArgon2(t *testing.T) {
	good, err := Seal(Files{"a.key": []byte("k")}, "0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	var s sealed
	if err := json.Unmarshal(good, &s); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*sealed){
		"0 passes":      func(s *sealed) { s.Time = 0 },
		"17 passes":     func(s *sealed) { s.Time = 17 },
		"0 threads":     func(s *sealed) { s.Threads = 0 },
		"4 GiB":         func(s *sealed) { s.MemoryKiB = 1 << 22 },
		"1 KiB":         func(s *sealed) { s.MemoryKiB = 1 },
		"no salt":       func(s *sealed) { s.Salt = nil },
		"a short nonce": func(s *sealed) { s.Nonce = s.Nonce[:8] },
	} {
		bad := s
		change(&bad)
		blob, _ := json.Marshal(bad)
		if _, err := Open(blob, "0123456789abcdef"); err == nil || err.Error() != "bootstrap data in the datastore has implausible parameters" {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Open(good, "0123456789abcdef"); err != nil {
		t.Errorf("kubling's own seal: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	good, err := Seal(Files{"a.key": []byte("k")}, "0123456789abcdef")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "0123456789abcdef")
	f.Add([]byte(`{"version":1,"argon2Time":0,"argon2MemoryKiB":0,"argon2Threads":0,"salt":"","nonce":"","box":""}`), "x")
	f.Add([]byte(`{"version":1}`), "")
	f.Fuzz(func(t *testing.T, blob []byte, secret string) {
		files, err := Open(blob, secret)
		if err == nil && files == nil {
			t.Error("opened to nothing without an error")
		}
	})
}
