package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"commerce/internal/platform/testenv"
)

// buildBinary builds the commerce command once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "commerce")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// productionEnv is a production environment complete except for the payment settings.
func productionEnv(dsn, redisPrefix string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"APP_ENV=production", "HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=info",
		"ADMIN_TOKEN=admin-token-for-config-tests", "AUTH_JWT_SECRET=jwt-secret-for-config-tests-0123456789abcdef",
		"PAYMENT_WEBHOOK_SECRET=whsec-config-tests", "REDIS_PREFIX=" + redisPrefix, "MIGRATE_ON_START=true"}
	if dsn != "" {
		env = append(env, "DATABASE_URL="+dsn)
	}
	if addrs := testenv.RedisAddrs(); len(addrs) > 1 {
		env = append(env, "REDIS_ADDRS="+strings.Join(addrs, ","))
	} else {
		env = append(env, "REDIS_URL=redis://"+addrs[0]+"/0")
	}
	return env
}

// TestProductionRefusesWithoutPaymentProvider runs the real binary: in production it
// exits non-zero, naming what is missing, without PAYMENT_PROVIDER, and with
// PAYMENT_PROVIDER=stripe but without the Stripe secrets.
func TestProductionRefusesWithoutPaymentProvider(t *testing.T) {
	bin := buildBinary(t)
	cases := []struct {
		name  string
		extra []string
		want  []string
	}{
		{"no provider", nil, []string{"PAYMENT_PROVIDER"}},
		{"stripe without secrets", []string{"PAYMENT_PROVIDER=stripe"}, []string{"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"}},
		{"stripe without webhook secret", []string{"PAYMENT_PROVIDER=stripe", "STRIPE_SECRET_KEY=sk_test_x"}, []string{"STRIPE_WEBHOOK_SECRET"}},
		{"unknown provider", []string{"PAYMENT_PROVIDER=paypal"}, []string{"PAYMENT_PROVIDER"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "serve")
			// No database: the refusal must come before anything is opened.
			cmd.Env = append(productionEnv("postgres://nobody@127.0.0.1:1/none?connect_timeout=1", "cfgtest:"), tc.extra...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("exit: %v (want non-zero)\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("the message does not name %s:\n%s", w, out)
				}
			}
		})
	}
}

// TestTestProviderStartsWithLoudWarning: PAYMENT_PROVIDER=test starts in production, and
// says loudly at start that it takes no money.
func TestTestProviderStartsWithLoudWarning(t *testing.T) {
	bin := buildBinary(t)
	_, dsn := testenv.DB(t)
	_, space := testenv.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(productionEnv(dsn, string(space)), "PAYMENT_PROVIDER=test")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var seen []string
	for sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		if strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, "TAKES NO MONEY") &&
			strings.Contains(line, "PAYMENT_PROVIDER=test") {
			return
		}
		if strings.Contains(line, "listening") || strings.Contains(line, "serving") {
			break
		}
	}
	t.Fatalf("no loud warning about the test provider at start:\n%s", strings.Join(seen, "\n"))
}
