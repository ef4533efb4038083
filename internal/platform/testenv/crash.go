package testenv

// Crash tests run the flow under test in a child process that really dies at the crash
// point, so nothing a live process would do on its way out (deferred unlocks, releases,
// rollbacks, graceful connection closes) can hide what a real crash leaves behind.
//
// The test re-executes its own test binary for its own name only (-test.run=^Name$),
// with environment variables that name the crash point, the parent's databases and
// Redis key spaces, and any values the child needs (ids made by the parent's setup):
//
//	func TestCrashDuringX(t *testing.T) {
//		ev := newEnv(t) // in the child: the parent's database and Redis key space
//		if testenv.CrashChild() {
//			id := testenv.CrashVar("checkout")
//			setHook(ev, testenv.CrashAt) // os.Exit(CrashExitCode) at the named point
//			runTheFlow(ev, id)
//			return // never reached the point: exit 0, and the parent fails
//		}
//		id := setUp(ev)
//		testenv.RunCrash(t, "after_commit", map[string]string{"checkout": id})
//		recoverAndCheck(ev, id)
//	}
//
// In a crash child, DB, Redis and StartRedis attach to what the parent made for the same
// test (its n-th call gets the parent's n-th database, key space or server) and clean
// nothing up. Everything before the child check must therefore be free of side effects
// other than those calls. A child that never reaches its point exits 0 (or 1 when it
// fails), which is not CrashExitCode, so RunCrash fails the test.
//
// For a kill from outside (SIGKILL of a process in the middle of some work), the child
// calls PauseAt at the point; StartCrash starts it, Child.WaitPaused waits until it is
// there, and Child.Kill sends SIGKILL.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CrashExitCode is the status a crash child exits with at its crash point. No other
// path of a test binary exits with it.
const CrashExitCode = 86

const (
	envChild     = "COMMERCE_CRASH_CHILD" // "1" in a crash child
	envPoint     = "COMMERCE_CRASH_POINT" // the point where the child dies or pauses
	envPauseFile = "COMMERCE_CRASH_PAUSED"
	envDSNs      = "COMMERCE_CRASH_DSNS"   // the parent's database URLs, comma separated, in call order
	envSpaces    = "COMMERCE_CRASH_SPACES" // the parent's Redis key spaces, comma separated, in call order
	envServers   = "COMMERCE_CRASH_REDIS"  // the parent's private redis-server addresses, in call order
	envVarPrefix = "COMMERCE_CRASH_VAR_"
)

// childRunTimeout bounds a crash child that neither dies nor pauses.
const childRunTimeout = 2 * time.Minute

// CrashChild reports whether this process is a crash child started by RunCrash or
// StartCrash.
func CrashChild() bool { return os.Getenv(envChild) == "1" }

// CrashPoint returns the point this crash child was started for ("" in the parent).
func CrashPoint() string {
	if !CrashChild() {
		return ""
	}
	return os.Getenv(envPoint)
}

// CrashVar returns the value the parent passed under name ("" when absent).
func CrashVar(name string) string { return os.Getenv(envVarPrefix + name) }

// CrashAt ends this process at once with CrashExitCode when it is a crash child started
// for point. os.Exit runs no deferred function and no cleanup: the process is dead at
// that instant, as after kill -9. Anywhere else it does nothing, so production hooks can
// call it unconditionally from tests.
func CrashAt(point string) {
	if CrashChild() && os.Getenv(envPoint) == point {
		os.Exit(CrashExitCode)
	}
}

// PauseAt stops this process for good at point, when it is a crash child started for
// point by StartCrash: it tells the parent (Child.WaitPaused returns) and sleeps until
// it is killed. Anywhere else it does nothing.
func PauseAt(point string) {
	if !CrashChild() || os.Getenv(envPoint) != point {
		return
	}
	if f := os.Getenv(envPauseFile); f != "" {
		_ = os.WriteFile(f, []byte(point), 0o600)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// resources records what DB, Redis and StartRedis made for each test (by kind, then by
// test name), so that a crash child of that test can attach to the same ones.
var resources struct {
	mu   sync.Mutex
	made map[string]map[string][]string
	used map[string]int // child side: how many of each kind were handed out
}

// record notes that the parent made v of kind (an env variable name) for t, until t
// ends: a test run again under the same name (go test -count=2) starts with a clean list,
// so its crash child never attaches to what the earlier run made and dropped.
func record(kind string, t testing.TB, v string) {
	name := t.Name()
	t.Cleanup(func() {
		resources.mu.Lock()
		defer resources.mu.Unlock()
		delete(resources.made[kind], name)
	})
	resources.mu.Lock()
	defer resources.mu.Unlock()
	if resources.made == nil {
		resources.made = map[string]map[string][]string{}
	}
	if resources.made[kind] == nil {
		resources.made[kind] = map[string][]string{}
	}
	resources.made[kind][name] = append(resources.made[kind][name], v)
}

// inherited returns the n-th value the parent passed in env (a crash child's DB, Redis
// or StartRedis call), failing the test when the parent made fewer.
func inherited(t testing.TB, env string) string {
	t.Helper()
	resources.mu.Lock()
	defer resources.mu.Unlock()
	if resources.used == nil {
		resources.used = map[string]int{}
	}
	var vals []string
	if s := os.Getenv(env); s != "" {
		vals = strings.Split(s, ",")
	}
	n := resources.used[env]
	if n >= len(vals) {
		t.Fatalf("testenv: crash child asked for more resources (%s #%d) than its parent made", env, n+1)
	}
	resources.used[env] = n + 1
	return vals[n]
}

// made returns what the parent made of kind for t and its ancestors, ancestors first,
// as an environment variable.
func made(kind string, t testing.TB) string {
	resources.mu.Lock()
	defer resources.mu.Unlock()
	var out []string
	parts := strings.Split(t.Name(), "/")
	for i := 1; i <= len(parts); i++ {
		out = append(out, resources.made[kind][strings.Join(parts[:i], "/")]...)
	}
	return kind + "=" + strings.Join(out, ",")
}

// Child is a running crash child (see StartCrash).
type Child struct {
	t     testing.TB
	point string
	cmd   *exec.Cmd
	out   *syncBuffer
	pause string
	done  chan struct{}
	err   error
}

// RunCrash runs this test again in a child process that dies at point (CrashAt), with
// vars readable there through CrashVar, and waits for it. It fails t unless the child
// exited with CrashExitCode, i.e. reached point; the child's output is logged then.
func RunCrash(t testing.TB, point string, vars map[string]string) {
	t.Helper()
	c := StartCrash(t, point, vars)
	select {
	case <-c.done:
	case <-time.After(childRunTimeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("crash child for %q did not end within %s; output:\n%s", point, childRunTimeout, c.out)
	}
	if code := c.cmd.ProcessState.ExitCode(); code != CrashExitCode {
		t.Fatalf("crash child for %q exited with %d (want %d: it did not reach the crash point); output:\n%s",
			point, code, CrashExitCode, c.out)
	}
}

// StartCrash starts this test again in a child process for point (where it dies with
// CrashAt or stops with PauseAt) and returns without waiting. The child is killed when
// the test ends.
func StartCrash(t testing.TB, point string, vars map[string]string) *Child {
	t.Helper()
	if CrashChild() {
		t.Fatal("testenv: a crash child cannot start another one")
	}
	pattern := "^" + strings.Join(regexpParts(t.Name()), "$/^") + "$"
	pause := filepath.Join(t.TempDir(), "paused")
	cmd := exec.Command(os.Args[0], "-test.run="+pattern, "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(),
		envChild+"=1", envPoint+"="+point, envPauseFile+"="+pause,
		made(envDSNs, t), made(envSpaces, t), made(envServers, t))
	for k, v := range vars {
		cmd.Env = append(cmd.Env, envVarPrefix+k+"="+v)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start crash child: %v", err)
	}
	c := &Child{t: t, point: point, cmd: cmd, out: out, pause: pause, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

// WaitPaused waits until the child is paused at its point (PauseAt). It fails the test
// if the child ends first or does not get there within timeout.
func (c *Child) WaitPaused(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(c.pause); err == nil {
			return
		}
		select {
		case <-c.done:
			c.t.Fatalf("crash child for %q ended (status %d) before pausing there; output:\n%s",
				c.point, c.cmd.ProcessState.ExitCode(), c.out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("crash child did not pause at %q within %s; output:\n%s", c.point, timeout, c.out)
		}
	}
}

// Kill sends SIGKILL to the child and waits until it is gone; it fails the test if the
// child had already ended on its own.
func (c *Child) Kill() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("crash child for %q was not killed by SIGKILL (%v); output:\n%s", c.point, c.cmd.ProcessState, c.out)
	}
}

// Output returns what the child has written so far.
func (c *Child) Output() string { return c.out.String() }

// regexpParts quotes each element of a test name for -test.run.
func regexpParts(name string) []string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return parts
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Exited reports whether the child has ended.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// ExitCode returns the child's exit status once it has ended (-1 before, or when a
// signal ended it).
func (c *Child) ExitCode() int {
	if !c.Exited() {
		return -1
	}
	return c.cmd.ProcessState.ExitCode()
}
