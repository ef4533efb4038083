// Package inventory is the L1 inventory (docs/inventory.md): available
// counters and holds in Redis, changed only by the Lua scripts of scripts/lua, with
// on_hand in PostgreSQL as the truth.
//
// # State
//
// Per variant, under one hash tag (Cluster-safe): avail (units that may still be
// reserved), holds (ZSET holder → deadline ms, Redis clock), held (HASH holder →
// quantity), cmt (HASH holder → "<attempt>|<expiry>" while a hold is committing) and ver
// (HASH v = newest PostgreSQL version applied, b = version the counter was last computed
// from by a load or a reconcile, e = random epoch of the load that created it). Outside
// the tags, inv:holdidx (ZSET variant → earliest deadline) lets Sweep find due variants
// without SCAN. In PostgreSQL, inventory_commits records each commit attempt as
// committed or aborted: the fence between a slow commit and recovery.
//
// Invariant, per variant: avail + Σ held == on_hand, except in the windows below, where
// avail is lower (never higher) — with one exception that needs Redis to lose data,
// described last.
//
// # Operations
//
//   - Reserve: one script reclaims the variant's expired held holds (bounded), then
//     takes q from avail if avail ≥ q and records the hold. A second reserve by the same
//     holder replaces its hold. A missing counter answers LOAD_REQUIRED; Go reads
//     (on_hand, version) and runs load: avail = on_hand − Σ held, SET-NX-like, refused
//     as STALE when an operation newer than the read already reached Redis (v > version),
//     in which case Go reads again. Cart-wide all-or-nothing is done in Go.
//   - Release / reclaim / sweep: the script that deletes a held hold returns its units;
//     a gone hold returns nothing; committing holds are never returned by them.
//   - Commit: (1) mark each hold committing under a fresh attempt token (its deadline
//     becomes now + CommitTimeout); (2) one transaction: the caller's inTx, on_hand −= q
//     WHERE on_hand >= q, version + 1, ledger row, and INSERT the attempt as committed;
//     (3) finalize: delete the hold without returning it, v = max(v, version).
//     A failed (2) un-marks the holds (held again, old expiry). A crash leaves committing
//     holds; after their deadline, recovery INSERTs the attempt as aborted (ON CONFLICT DO
//     NOTHING) and reads the row: committed → finalize, aborted → return the units. The
//     primary key decides exactly once: a transaction still running when recovery
//     records "aborted" fails on its own INSERT (it waits for recovery's row, then
//     conflicts), and recovery never returns the units of a sale that committed. (Looking
//     for the ledger row instead would race: recovery could see no row, return the stock,
//     and the transaction commit a moment later.)
//   - Adjust: an increase is written to PostgreSQL, then applied as avail += delta unless
//     version ≤ b (the counter was computed from a state that includes it: applying it
//     again would overstate). A decrease is reserved first (a hold of |delta| units under
//     a one-off holder), then sold like a commit with the adjustment's reason: it can
//     never take units that a shopper holds, and a crash is recovered like a commit.
//     Hence "below what is held" is refused exactly when avail < |delta|.
//   - Reconcile: read (on_hand, version), then one script: if v > version the read is
//     stale, skip; else avail = on_hand − Σ held and v = b = version.
//   - Finalize, precisely: hold present and version > b → delete it (avail unchanged);
//     hold present and version ≤ b → the counter was computed after the sale from an
//     on_hand without these units AND minus this hold: delete it and add q back; hold
//     gone and the epoch differs from the one seen at (1) → the hold was lost with Redis
//     and the counter reloaded: if version > b that load still counted the units, so
//     avail −= q; hold gone, same epoch → already finalized (by recovery): nothing.
//
// # Windows (avail below the truth, never above)
//
//   - Between an increase's PostgreSQL commit and its Redis step (for ever, until the
//     next reconcile, if that step fails).
//   - A crashed commit or decrease: its committing holds count as held until recovery,
//     i.e. up to CommitTimeout + the sweep interval.
//   - A failed compensating release after a failed Reserve: until the hold's expiry.
//   - A load or reconcile that read PostgreSQL after a sale committed but before its
//     finalize: low by q until finalize adds q back (version ≤ b).
//   - A reconcile computed while a hold was being released or reserved cannot be off:
//     holds are summed inside the same script that sets the counter.
//
// The one window on the unsafe side needs Redis to lose data (FLUSHALL, restart without
// persistence) while a commit is between (1) and (3): its hold is gone, and a load that
// read on_hand before the sale's transaction counts the units as available until the
// finalize subtracts them (milliseconds; until the next reconcile if that process dies
// before finalizing). Even then nothing is sold twice: on_hand in PostgreSQL never goes
// below 0 and the sale transaction decrements WHERE on_hand >= q, so a checkout that
// reserved such a unit fails at Commit (ErrInsufficientStock) instead of overselling.
//
// # Redis unavailable
//
// Reserve, Release, Commit, Adjust, Set, Levels, Reconcile and Sweep return the Redis
// error (503 at the edge): a reservation is never guessed. Available alone degrades to
// PostgreSQL on_hand (ignoring holds) for display and soft checks.
package inventory
