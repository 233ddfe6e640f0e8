// Command summary ends `make bench`: one table of every figure the
// benchmarks just recorded (KUBLING_BENCH_OUT/*.json), each beside its goal
// and the previous run's value kept in docs/bench-last.json, which it then
// updates (figures not measured this time keep their earlier value and
// date), so a regression shows at once.
//
//	KUBLING_BENCH_OUT=build/bench go run ./test/bench/summary [-keep docs/bench-last.json]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubling/kubling/test/bench/benchutil"
)

// entry is a figure with the run it comes from.
type entry struct {
	benchutil.Figure
	Date   string `json:"date"`
	Commit string `json:"commit"`
	Host   string `json:"host"`
}

// benches is the order the table follows.
var benches = []string{"start", "node", "agent", "artifacts"}

func main() {
	keep := flag.String("keep", "docs/bench-last.json", "the previous run's figures, updated with this run's")
	flag.Parse()
	out := os.Getenv("KUBLING_BENCH_OUT")
	if out == "" {
		benchutil.Fatal("KUBLING_BENCH_OUT must name the folder the benchmarks wrote to (run `make bench`)")
	}
	var previous []entry
	if b, err := os.ReadFile(*keep); err == nil {
		benchutil.Must(json.Unmarshal(b, &previous))
	} else if !errors.Is(err, fs.ErrNotExist) {
		benchutil.Must(err)
	}
	prev := map[string]entry{}
	for _, e := range previous {
		prev[e.Name] = e
	}
	host, _ := os.Hostname()
	commit, _ := exec.Command("git", "describe", "--always", "--dirty").Output()
	now := time.Now().Format("2006-01-02")
	var current []entry
	for _, b := range benches {
		raw, err := os.ReadFile(filepath.Join(out, b+".json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		benchutil.Must(err)
		var figs []benchutil.Figure
		benchutil.Must(json.Unmarshal(raw, &figs))
		for _, f := range figs {
			current = append(current, entry{Figure: f, Date: now, Commit: strings.TrimSpace(string(commit)), Host: host})
		}
	}
	if len(current) == 0 {
		benchutil.Fatal("no figures in " + out)
	}

	fmt.Printf("\nkubling benchmarks, %s, host %s, %s\n\n", now, host, strings.TrimSpace(string(commit)))
	fmt.Println("| figure | goal | previous | this run | |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	seen := map[string]bool{}
	for _, e := range current {
		seen[e.Name] = true
		goal, mark := "", ""
		if e.Max > 0 {
			goal = "≤ " + benchutil.Format(e.Max, e.Unit)
			if e.Value > e.Max {
				mark = "over goal"
			}
		}
		before := ""
		if p, ok := prev[e.Name]; ok {
			before = fmt.Sprintf("%s (%s)", benchutil.Format(p.Value, p.Unit), p.Date)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", e.Name, goal, before, benchutil.Format(e.Value, e.Unit), mark)
	}
	kept := current
	for _, p := range previous {
		if !seen[p.Name] {
			kept = append(kept, p)
		}
	}
	b, err := json.MarshalIndent(kept, "", "  ")
	benchutil.Must(err)
	benchutil.Must(os.WriteFile(*keep, append(b, '\n'), 0o644))
	fmt.Printf("\n%d figures; kept in %s with %d from earlier runs\n", len(current), *keep, len(kept)-len(current))
}
