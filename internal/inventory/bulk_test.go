package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

type bulkAnswer struct {
	Summary BulkSummary  `json:"summary"`
	Results []BulkResult `json:"results"`
}

func (h *httpEnv) bulk(contentType, key, body string) (int, bulkAnswer, []byte) {
	h.t.Helper()
	req := httptest.NewRequest("POST", "/admin/inventory/bulk", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	rec := httptest.NewRecorder()
	h.echo.ServeHTTP(rec, req)
	var a bulkAnswer
	if rec.Code == 200 {
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			h.t.Fatalf("bulk answer: %v: %s", err, rec.Body.String())
		}
	}
	return rec.Code, a, rec.Body.Bytes()
}

// skuOfVariant reads a variant's SKU.
func (e *env) skuOfVariant(id uuid.UUID) string {
	e.t.Helper()
	var s string
	if err := e.pool.QueryRow(context.Background(), `SELECT sku FROM variants WHERE id = $1`, id).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// checkLedgerAgrees checks, for every variant, that the initial stock plus the ledger's
// deltas is on_hand, that the last ledger row carries the current on_hand and version,
// and that Redis agrees with PostgreSQL (available + held = on_hand).
func checkLedgerAgrees(t *testing.T, e *env, s *Service, ids []uuid.UUID, initial int64) {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT i.variant_id, i.on_hand, i.version,
			COALESCE((SELECT sum(delta) FROM stock_ledger l WHERE l.variant_id = i.variant_id), 0),
			(SELECT on_hand_after FROM stock_ledger l WHERE l.variant_id = i.variant_id ORDER BY id DESC LIMIT 1),
			(SELECT version FROM stock_ledger l WHERE l.variant_id = i.variant_id ORDER BY id DESC LIMIT 1)
		FROM inventory i WHERE i.variant_id = ANY($1)`, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id uuid.UUID
		var onHand, version, sum int64
		var lastOnHand, lastVersion *int64
		if err := rows.Scan(&id, &onHand, &version, &sum, &lastOnHand, &lastVersion); err != nil {
			t.Fatal(err)
		}
		n++
		if initial+sum != onHand {
			t.Fatalf("variant %s: initial %d + ledger %d != on_hand %d", id, initial, sum, onHand)
		}
		if lastOnHand != nil && (*lastOnHand != onHand || *lastVersion != version) {
			t.Fatalf("variant %s: last ledger row on_hand %d v%d, inventory %d v%d", id, *lastOnHand, *lastVersion, onHand, version)
		}
	}
	if n != len(ids) {
		t.Fatalf("checked %d variants, want %d", n, len(ids))
	}
	rep, err := s.Reconcile(context.Background(), ids, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Drifted != 0 {
		t.Fatalf("Redis and PostgreSQL disagree on %d variants after the sync: %+v", rep.Drifted, rep.Variants[:min(3, len(rep.Variants))])
	}
}

// TestBulkTenThousandLinesThreeBad sends 10 000 lines (JSON), 3 of them bad (an unknown
// SKU, a negative on_hand, a misspelt field): the 9 997 good ones apply, the 3 are
// reported by line, and the ledger, PostgreSQL and Redis agree afterwards. The same
// request again changes nothing (every line is a replay), and the same key with another
// body is refused.
func TestBulkTenThousandLinesThreeBad(t *testing.T) {
	e := newEnv(t)
	h := newHTTPEnv(t, e)
	const n = 10_000
	ids := e.variants(n, 5)
	// Half the lines by SKU, half by id; a mix of absolute values and deltas.
	var b bytes.Buffer
	b.WriteString("[")
	bad := map[int]string{1234: "unknown", 5000: "invalid", 9999: "invalid"}
	for i, id := range ids {
		if i > 0 {
			b.WriteString(",\n")
		}
		ref := fmt.Sprintf(`"variant_id":%q`, id)
		if i%2 == 0 {
			ref = fmt.Sprintf(`"sku":%q`, "SKU-"+id.String())
		}
		switch {
		case i == 1233: // line 1234
			b.WriteString(`{"sku":"NO-SUCH-SKU","on_hand":3}`)
		case i == 4999: // line 5000
			fmt.Fprintf(&b, `{%s,"on_hand":-1}`, ref)
		case i == 9998: // line 9999
			fmt.Fprintf(&b, `{%s,"onhand":7}`, ref)
		case i%3 == 0:
			fmt.Fprintf(&b, `{%s,"delta":%d,"reason":"cycle count"}`, ref, 1+i%4)
		default:
			fmt.Fprintf(&b, `{%s,"on_hand":%d}`, ref, 6+i%50)
		}
	}
	b.WriteString("]")
	body := b.String()

	start := time.Now()
	code, a, raw := h.bulk("application/json", "erp-sync-1", body)
	if code != 200 {
		t.Fatalf("bulk: %d %s", code, raw)
	}
	t.Logf("10 000 lines applied in %v", time.Since(start).Round(time.Millisecond))
	want := BulkSummary{Lines: n, Applied: n - 3, Unknown: 1, Invalid: 2}
	if a.Summary != want {
		t.Fatalf("summary %+v, want %+v", a.Summary, want)
	}
	if len(a.Results) != n {
		t.Fatalf("%d results", len(a.Results))
	}
	for i, r := range a.Results {
		if r.Line != i+1 {
			t.Fatalf("result %d has line %d", i, r.Line)
		}
		if st, isBad := bad[r.Line]; isBad {
			if string(r.Status) != st || r.Error == nil || r.Error.Message == "" {
				t.Fatalf("bad line %d: %+v", r.Line, r)
			}
			continue
		}
		if r.Status != BulkApplied || r.Replayed || r.OnHand == nil {
			t.Fatalf("line %d: %+v", r.Line, r)
		}
	}
	if a.Results[4999].Error.Message != fmt.Sprintf("on_hand must be between 0 and %d", MaxOnHand) ||
		!strings.Contains(a.Results[9998].Error.Message, "onhand") {
		t.Fatalf("invalid lines say: %q / %q", a.Results[4999].Error.Message, a.Results[9998].Error.Message)
	}
	// Spot-check values, then the ledger and Redis for all.
	for _, i := range []int{0, 1, 2, 3, 4, 9997} {
		want := int64(5 + 1 + i%4)
		if i%3 != 0 {
			want = int64(6 + i%50)
		}
		if got := e.onHand(ids[i]); got != want {
			t.Fatalf("line %d: on_hand %d, want %d", i+1, got, want)
		}
	}
	for _, i := range []int{4999, 9998} {
		if got := e.onHand(ids[i]); got != 5 {
			t.Fatalf("bad line %d changed on_hand to %d", i+1, got)
		}
	}
	checkLedgerAgrees(t, e, h.svc, ids, 5)
	var ledgerRows int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM stock_ledger WHERE variant_id = ANY($1)`, ids).
		Scan(&ledgerRows); err != nil {
		t.Fatal(err)
	}
	if ledgerRows != n-3 { // one row per applied line; the 3 bad lines' variants are untouched
		t.Fatalf("%d ledger rows, want %d", ledgerRows, n-3)
	}

	// The same request again: every good line is a replay, nothing changes.
	code, a2, raw := h.bulk("application/json", "erp-sync-1", body)
	if code != 200 || a2.Summary != want {
		t.Fatalf("replay: %d %+v %s", code, a2.Summary, raw[:min(len(raw), 300)])
	}
	for _, r := range a2.Results {
		if r.Status == BulkApplied && !r.Replayed {
			t.Fatalf("replay applied line %d again", r.Line)
		}
	}
	checkLedgerAgrees(t, e, h.svc, ids, 5)
	var after int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM stock_ledger WHERE variant_id = ANY($1)`, ids).
		Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != ledgerRows {
		t.Fatalf("the replay wrote %d ledger rows", after-ledgerRows)
	}
	// The same key with another body.
	if code, _, raw := h.bulk("application/json", "erp-sync-1", `[{"sku":"x","on_hand":1}]`); code != 422 ||
		!strings.Contains(string(raw), "idempotency_key_reused") {
		t.Fatalf("key reused with another body: %d %s", code, raw)
	}
}

// TestBulkCSVAndEdgeCases covers the CSV format, unchanged lines, deltas of one variant
// in order, a decrease below what is held, and the whole-body errors (nothing applied).
func TestBulkCSVAndEdgeCases(t *testing.T) {
	e := newEnv(t)
	h := newHTTPEnv(t, e)
	ids := e.variants(4, 10)
	sku := func(i int) string { return e.skuOfVariant(ids[i]) }
	if err := h.svc.Reserve(context.Background(), "shopper1", []Line{{VariantID: ids[3], Quantity: 8}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	csvBody := "sku,variant_id,on_hand,delta,reason\n" +
		sku(0) + ",,10,,\n" + // unchanged
		sku(1) + ",,,5,delivery\n" + // 15
		sku(1) + ",,,-3,breakage\n" + // 12, after the line above
		"," + ids[2].String() + ",0,,\n" + // 0
		sku(3) + ",,1,,\n" + // 8 held: refused
		sku(0) + ",,abc,,\n" + // invalid number
		sku(0) + ",,1\n" + // wrong cell count
		",,1,,\n" + // no variant
		"NOPE,,1,,\n" // unknown
	code, a, raw := h.bulk("text/csv", "", csvBody)
	if code != 200 {
		t.Fatalf("csv: %d %s", code, raw)
	}
	want := BulkSummary{Lines: 9, Applied: 3, Unchanged: 1, Failed: 1, Invalid: 3, Unknown: 1}
	if a.Summary != want {
		t.Fatalf("summary %+v, want %+v: %s", a.Summary, want, raw)
	}
	if a.Results[4].Error == nil || a.Results[4].Error.Code != "below_held" {
		t.Fatalf("below held: %+v", a.Results[4])
	}
	wantLevels(t, h.svc, ids[0], 10, 10, 0)
	wantLevels(t, h.svc, ids[1], 12, 12, 0)
	wantLevels(t, h.svc, ids[2], 0, 0, 0)
	wantLevels(t, h.svc, ids[3], 10, 2, 8)
	if got := ledgerSum(t, e.pool, ids[1], "breakage"); got != -3 {
		t.Fatalf("ledger reason: %d", got)
	}
	if got := ledgerSum(t, e.pool, ids[2], DefaultBulkReason); got != -10 {
		t.Fatalf("default reason: %d", got)
	}

	// Whole-body errors change nothing.
	for _, c := range []struct {
		ct, body string
		status   int
	}{
		{"application/json", `{"sku":"a","on_hand":1}`, 400},
		{"application/json", `[{"sku":"` + sku(0) + `","on_hand":1},`, 400},
		{"application/json", `[{"sku":"` + sku(0) + `","on_hand":1}] []`, 400},
		{"application/json", `[]`, 422},
		{"text/csv", "sku,qty\n" + sku(0) + ",1\n", 400},
		{"text/csv", "sku,on_hand\n\"" + sku(0) + ",1\n", 400},
		{"text/plain", "x", 415},
	} {
		code, _, raw := h.bulk(c.ct, "", c.body)
		if code != c.status || !strings.Contains(string(raw), `"error"`) {
			t.Fatalf("%s %q: %d %s", c.ct, c.body, code, raw)
		}
	}
	var tooMany bytes.Buffer
	tooMany.WriteString("sku,on_hand\n")
	for i := 0; i <= MaxBulkLines; i++ {
		fmt.Fprintf(&tooMany, "%s,%d\n", sku(0), i)
	}
	if code, _, raw := h.bulk("text/csv", "", tooMany.String()); code != 413 {
		t.Fatalf("10 001 lines: %d %s", code, raw)
	}
	if code, _, raw := h.bulk("application/json", "bad\x01key", `[{"sku":"a","on_hand":1}]`); code != 400 {
		t.Fatalf("bad key: %d %s", code, raw)
	}
	wantLevels(t, h.svc, ids[0], 10, 10, 0)
}

// TestBulkResumeAfterPartialRun: a request whose first run applied only some lines (its
// context ended mid-way, as when the client or the process died) is sent again with the
// same key; each line ends applied exactly once.
func TestBulkResumeAfterPartialRun(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ids := e.variants(400, 0)
	lines := make([]BulkLine, len(ids))
	d := int64(3)
	for i, id := range ids {
		lines[i] = BulkLine{VariantID: id, Delta: &d}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		poll(t, 10*time.Second, "some lines applied", func() (bool, error) {
			var n int
			err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM stock_ledger WHERE variant_id = ANY($1)`, ids).Scan(&n)
			return n >= 50, err
		})
		cancel()
	}()
	_, sum1, err := s.ApplyBulk(ctx, append([]BulkLine(nil), lines...), "resume-key", "fp", "")
	if err != nil {
		t.Fatal(err)
	}
	if sum1.Applied == len(ids) || sum1.Applied == 0 {
		t.Fatalf("first run was not partial: %+v", sum1)
	}
	_, sum2, err := s.ApplyBulk(context.Background(), append([]BulkLine(nil), lines...), "resume-key", "fp", "")
	if err != nil {
		t.Fatal(err)
	}
	if sum2.Applied != len(ids) || sum2.Failed != 0 {
		t.Fatalf("second run: %+v", sum2)
	}
	for _, id := range ids {
		if got := e.onHand(id); got != 3 {
			t.Fatalf("variant %s: on_hand %d after resume, want 3 (applied once)", id, got)
		}
	}
	// A line cut between its PostgreSQL commit and its Redis step leaves the counter low
	// (the safe side) until reconcile, as for a single adjustment.
	if _, err := s.Reconcile(context.Background(), ids, false); err != nil {
		t.Fatal(err)
	}
	checkLedgerAgrees(t, e, s, ids, 0)
	t.Logf("first run %+v, second %+v", sum1, sum2)
}
