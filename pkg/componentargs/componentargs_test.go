package componentargs

import (
	"slices"
	"testing"
)

func TestBuildOverridesSortsAndDropsEmpty(t *testing.T) {
	got, err := Build(map[string]string{"b": "1", "a": "2", "empty": ""}, []string{"--b=3", "c=4=5"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--a=2", "--b=3", "--c=4=5"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := Build(nil, []string{"novalue"}); err == nil {
		t.Fatal("override without = accepted")
	}
}
