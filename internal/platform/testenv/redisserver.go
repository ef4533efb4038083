package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a private redis-server process for tests that flush, kill or restart
// Redis, which must not disturb the tests sharing the machine's Redis.
type RedisServer struct {
	t    testing.TB
	Addr string
	port int
	dir  string
	cmd  *exec.Cmd
}

// StartRedis starts a redis-server (Debian's binary, no persistence) on a free port and
// stops it when the test ends. In a crash child it returns the parent's server, which
// the child must not start, kill or restart.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	if CrashChild() { // the parent's server, which the parent owns
		return &RedisServer{t: t, Addr: inherited(t, envServers)}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("testenv: redis-server binary is required (make test installs it): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &RedisServer{t: t, port: port, dir: t.TempDir(), Addr: "127.0.0.1:" + strconv.Itoa(port)}
	s.Start()
	record(envServers, t, s.Addr)
	t.Cleanup(s.Kill)
	return s
}

// Start (re)starts the server on its port and waits until it answers PING.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--loglevel", "warning",
		"--logfile", "redis.log")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not start: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL), losing everything it held.
func (s *RedisServer) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Client returns a new client for the server, closed when the test ends.
func (s *RedisServer) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

func (s *RedisServer) String() string { return fmt.Sprintf("redis-server %s", s.Addr) }
