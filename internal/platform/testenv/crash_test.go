package testenv_test

import (
	"context"
	"testing"
	"time"

	"commerce/internal/platform/testenv"
)

// TestCrashChildDiesAtItsPointWithoutCleanup: the child attaches to the parent's
// database and key space, writes before the crash point, and dies there: its deferred
// write and its t.Cleanup never run, and the parent sees both the earlier writes and the
// missing ones.
func TestCrashChildDiesAtItsPointWithoutCleanup(t *testing.T) {
	pool, _ := testenv.DB(t)
	rdb, space := testenv.Redis(t)
	ctx := context.Background()
	if testenv.CrashChild() {
		t.Cleanup(func() { rdb.Set(ctx, space.Key("cleanup"), "ran", 0) })
		defer rdb.Set(ctx, space.Key("deferred"), "ran", 0)
		if _, err := pool.Exec(ctx, `CREATE TABLE crash_probe (v text)`); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO crash_probe VALUES ($1)`, testenv.CrashVar("value")); err != nil {
			t.Fatal(err)
		}
		rdb.Set(ctx, space.Key("before"), "yes", 0)
		testenv.CrashAt("elsewhere") // not this child's point: no effect
		testenv.CrashAt("here")
		t.Fatal("unreachable")
	}
	testenv.CrashAt("here") // in the parent: no effect
	testenv.RunCrash(t, "here", map[string]string{"value": "from parent"})
	var v string
	if err := pool.QueryRow(ctx, `SELECT v FROM crash_probe`).Scan(&v); err != nil || v != "from parent" {
		t.Fatalf("the child's write: %q, %v", v, err)
	}
	if rdb.Get(ctx, space.Key("before")).Val() != "yes" {
		t.Fatal("the child did not write to the parent's key space")
	}
	for _, k := range []string{"deferred", "cleanup"} {
		if n := rdb.Exists(ctx, space.Key(k)).Val(); n != 0 {
			t.Fatalf("the child's %s code ran: it did not die at the crash point", k)
		}
	}
}

// TestCrashChildThatMissesItsPointFailsTheParent runs a child that never reaches its
// point: its exit status is not CrashExitCode, which is what RunCrash rejects.
func TestCrashChildThatMissesItsPointFailsTheParent(t *testing.T) {
	if testenv.CrashChild() {
		testenv.CrashAt("another point")
		return // exits 0: the point was never reached
	}
	c := testenv.StartCrash(t, "the point", nil)
	deadline := time.Now().Add(time.Minute)
	for !c.Exited() {
		if time.Now().After(deadline) {
			t.Fatal("child did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := c.ExitCode(); code == testenv.CrashExitCode {
		t.Fatalf("a child that missed its point exited with the crash code %d", code)
	}
}

// TestPausedChildIsKilledBySIGKILL: PauseAt stops the child where the parent wants it,
// and Kill ends it with SIGKILL (no cleanup runs).
func TestPausedChildIsKilledBySIGKILL(t *testing.T) {
	rdb, space := testenv.Redis(t)
	ctx := context.Background()
	if testenv.CrashChild() {
		defer rdb.Set(ctx, space.Key("deferred"), "ran", 0)
		rdb.Set(ctx, space.Key("before"), "yes", 0)
		testenv.PauseAt("mid-work")
		t.Fatal("PauseAt returned")
	}
	c := testenv.StartCrash(t, "mid-work", nil)
	c.WaitPaused(time.Minute)
	if rdb.Get(ctx, space.Key("before")).Val() != "yes" {
		t.Fatal("paused before its work")
	}
	c.Kill()
	if rdb.Exists(ctx, space.Key("deferred")).Val() != 0 {
		t.Fatal("deferred code ran in a killed child")
	}
}
