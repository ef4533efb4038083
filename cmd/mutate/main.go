// Command mutate is the suite's mutation check (`make mutate`). It applies a curated list
// of mutants (mutants.go) to a scratch copy of the tree, one at a time; each mutant
// removes or weakens one guard, in Lua or in Go. For each it runs the tests named for it
// (go test -count=1 -run '^(…)$' on the named packages, without -race) and expects them
// to fail. It exits non-zero when a mutant survives (the tests passed with the guard
// broken), when a mutant does not build, when the named tests fail on the unmutated tree,
// or when a mutant's original text is no longer found exactly once in its file (so the
// list cannot rot silently as the code changes: that check covers every mutant, even
// those a subset run skips).
//
//	go run ./cmd/mutate                 # every mutant
//	go run ./cmd/mutate -rotate 4       # a quarter of them, chosen by the UTC date
//	go run ./cmd/mutate -shard 1/4      # the second quarter
//	go run ./cmd/mutate -only 'merge'   # those whose name matches a regexp
//	go run ./cmd/mutate -list           # print the list and check the anchors only
//
// It needs PostgreSQL and Redis like the tests (make mutate starts them).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A mutant replaces Old (which must occur exactly once in File) with New.
type mutant struct {
	Name   string   // short, unique
	File   string   // path from the module root
	Old    string   // the guard as written: a small, stable snippet
	New    string   // the guard removed or weakened
	Pkgs   []string // packages whose tests must catch it
	Tests  []string // test names (exact) that must fail
	Reason string   // the property the mutant breaks, in one line
}

func main() {
	var (
		list    = flag.Bool("list", false, "print the mutants and check their anchors; run nothing")
		only    = flag.String("only", "", "run only the mutants whose name matches this regexp")
		shard   = flag.String("shard", "", "run shard k/n (0-based) of the list")
		rotate  = flag.Int("rotate", 0, "run 1/n of the list, the shard chosen by the UTC day (0: all)")
		timeout = flag.Duration("timeout", 5*time.Minute, "time limit of one go test run")
		keep    = flag.Bool("keep", false, "keep the scratch copy (its path is printed)")
	)
	flag.Parse()
	if err := run(*list, *only, *shard, *rotate, *timeout, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

func run(listOnly bool, only, shard string, rotate int, timeout time.Duration, keep bool) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if err := checkList(root, mutants); err != nil {
		return err
	}
	sel, how, err := choose(mutants, only, shard, rotate, time.Now().UTC())
	if err != nil {
		return err
	}
	if listOnly {
		for i, m := range mutants {
			fmt.Printf("%2d %-26s %s\n   %s  (%s: %s)\n", i, m.Name, m.File, m.Reason,
				strings.Join(m.Pkgs, " "), strings.Join(m.Tests, ", "))
		}
		fmt.Printf("%d mutants, every anchor found exactly once\n", len(mutants))
		return nil
	}
	fmt.Printf("mutate: %d of %d mutants (%s)\n", len(sel), len(mutants), how)

	start := time.Now()
	scratch, err := os.MkdirTemp("", "commerce-mutate-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("mutate: scratch copy in", scratch)
	} else {
		defer os.RemoveAll(scratch)
	}
	if err := copyTree(root, scratch); err != nil {
		return fmt.Errorf("copy the tree: %w", err)
	}

	// The named tests must pass without any mutant, or a "kill" means nothing.
	byPkg := map[string][]string{}
	for _, m := range sel {
		for _, p := range m.Pkgs {
			byPkg[p] = append(byPkg[p], m.Tests...)
		}
	}
	pkgs := make([]string, 0, len(byPkg))
	for p := range byPkg {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		t0 := time.Now()
		out, err := goTest(scratch, []string{p}, byPkg[p], timeout)
		if err != nil {
			return fmt.Errorf("baseline: the named tests of %s fail without any mutant:\n%s", p, tail(out, 40))
		}
		fmt.Printf("baseline %-34s ok (%v)\n", p, time.Since(t0).Round(time.Second))
	}

	var killed, survived, broken []string
	for i, m := range sel {
		t0 := time.Now()
		path := filepath.Join(scratch, m.File)
		orig, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, bytes.Replace(orig, []byte(m.Old), []byte(m.New), 1), 0o644); err != nil {
			return err
		}
		out, testErr := goTest(scratch, m.Pkgs, m.Tests, timeout)
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			return err
		}
		verdict := "killed"
		switch {
		case testErr == nil:
			verdict = "SURVIVED"
			survived = append(survived, m.Name)
		case bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")):
			verdict = "DOES NOT BUILD"
			broken = append(broken, m.Name)
		default:
			killed = append(killed, m.Name)
		}
		fmt.Printf("[%2d/%d] %-26s %-8s %4ds  %s\n", i+1, len(sel), m.Name, verdict,
			int(time.Since(t0).Round(time.Second).Seconds()), m.Reason)
		if verdict != "killed" {
			fmt.Printf("        %s: %s\n%s\n", m.File, firstLine(m.Old), tail(out, 15))
		}
	}
	fmt.Printf("mutate: %d run, %d killed, %d survived, %d did not build, in %v\n",
		len(sel), len(killed), len(survived), len(broken), time.Since(start).Round(time.Second))
	if len(survived) > 0 || len(broken) > 0 {
		return fmt.Errorf("survived: %v; did not build: %v", survived, broken)
	}
	return nil
}

// checkList fails unless every mutant is well formed and its Old text occurs exactly once.
func checkList(root string, ms []mutant) error {
	var problems []string
	seen := map[string]bool{}
	for _, m := range ms {
		switch {
		case m.Name == "" || seen[m.Name]:
			problems = append(problems, fmt.Sprintf("%q: empty or repeated name", m.Name))
		case m.Old == "" || m.Old == m.New || len(m.Pkgs) == 0 || len(m.Tests) == 0 || m.Reason == "":
			problems = append(problems, fmt.Sprintf("%s: needs Old ≠ New, packages, tests and a reason", m.Name))
		}
		seen[m.Name] = true
		b, err := os.ReadFile(filepath.Join(root, m.File))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", m.Name, err))
			continue
		}
		if n := bytes.Count(b, []byte(m.Old)); n != 1 {
			problems = append(problems, fmt.Sprintf("%s: its original text is found %d times in %s (want exactly 1): %q",
				m.Name, n, m.File, firstLine(m.Old)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("the mutant list is out of date with the code:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// choose applies -only, -shard and -rotate.
func choose(ms []mutant, only, shard string, rotate int, now time.Time) ([]mutant, string, error) {
	how := "all"
	k, n := 0, 1
	switch {
	case shard != "":
		a, b, ok := strings.Cut(shard, "/")
		var err1, err2 error
		k, err1 = strconv.Atoi(a)
		n, err2 = strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n < 1 || k < 0 || k >= n {
			return nil, "", fmt.Errorf("-shard wants k/n with 0 <= k < n, got %q", shard)
		}
		how = fmt.Sprintf("shard %d/%d", k, n)
	case rotate > 1:
		n = rotate
		k = (now.YearDay() + now.Year()) % n
		how = fmt.Sprintf("shard %d/%d, chosen by the date %s; run all with make mutate", k, n, now.Format("2006-01-02"))
	}
	var re *regexp.Regexp
	if only != "" {
		var err error
		if re, err = regexp.Compile(only); err != nil {
			return nil, "", err
		}
		how += ", names matching " + only
	}
	var out []mutant
	for i, m := range ms {
		if i%n == k && (re == nil || re.MatchString(m.Name)) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, "", errors.New("no mutant selected")
	}
	return out, how, nil
}

func goTest(dir string, pkgs, tests []string, timeout time.Duration) ([]byte, error) {
	uniq := map[string]bool{}
	var names []string
	for _, t := range tests {
		if !uniq[t] {
			uniq[t] = true
			names = append(names, regexp.QuoteMeta(t))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	args := append([]string{"test", "-count=1", "-buildvcs=false", "-timeout", timeout.String(),
		"-run", "^(" + strings.Join(names, "|") + ")$"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// copyTree copies the files git would keep (tracked, plus untracked files not ignored) of
// root into dst: the working tree as it is, uncommitted edits included.
func copyTree(root, dst string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		src := filepath.Join(root, rel)
		info, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if err := copyFile(src, filepath.Join(dst, rel), info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "        " + strings.Join(lines, "\n        ")
}
