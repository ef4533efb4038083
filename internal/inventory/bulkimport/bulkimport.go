// Package bulkimport sends a stock file of any size to POST /admin/inventory/bulk in
// batches (the client side of `commerce inventory import`). Each batch carries the
// Idempotency-Key <key>:<batch number>, so running the same file again with the same key
// resumes it: lines that applied before are replays and never apply twice.
package bulkimport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"commerce/internal/inventory"
)

// Options configure one import.
type Options struct {
	BaseURL    string // the service, e.g. http://127.0.0.1:8080
	AdminToken string
	Key        string // the import's key; batch n is sent with <Key>:<n>
	Format     string // "csv" or "json"
	BatchSize  int    // lines per request (1..10 000; default 5 000)
	Retries    int    // attempts per batch on a transport error, 429 or 5xx (default 5)
	Client     *http.Client
	// Progress, when set, is called after each batch with the lines done so far.
	Progress func(done int, s inventory.BulkSummary)
}

// Problem is a line that did not apply, with its position in the file (1-based, not
// counting a CSV header).
type Problem struct {
	Record int                  `json:"record"`
	Result inventory.BulkResult `json:"result"`
}

// Report is the outcome of an import.
type Report struct {
	Summary  inventory.BulkSummary
	Batches  int
	Replayed int
	Problems []Problem // every line not applied or unchanged
}

// ErrBatch wraps a batch that could not be sent after its retries: run the import again
// with the same key to resume.
var ErrBatch = errors.New("bulkimport: batch not applied")

// Run reads the file from r and sends it batch by batch.
func Run(ctx context.Context, r io.Reader, o Options) (Report, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.BatchSize > inventory.MaxBulkLines {
		return Report{}, fmt.Errorf("batch size %d is above the server's %d", o.BatchSize, inventory.MaxBulkLines)
	}
	if o.Retries <= 0 {
		o.Retries = 5
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: inventory.BulkTimeout + 30*time.Second}
	}
	if o.Key == "" {
		return Report{}, errors.New("an import key is required (it makes the import resumable)")
	}
	var next func() ([]byte, int, error) // body of the next batch and its lines; 0 lines at the end
	contentType := "application/json"
	switch o.Format {
	case "csv":
		contentType = "text/csv"
		next = csvBatches(r, o.BatchSize)
	case "json":
		next = jsonBatches(r, o.BatchSize)
	default:
		return Report{}, fmt.Errorf("unknown format %q (csv or json)", o.Format)
	}
	var rep Report
	done := 0
	for batch := 1; ; batch++ {
		body, n, err := next()
		if err != nil {
			return rep, fmt.Errorf("read the file (after %d lines): %w", done, err)
		}
		if n == 0 {
			return rep, nil
		}
		res, err := send(ctx, o, contentType, fmt.Sprintf("%s:%d", o.Key, batch), body)
		if err != nil {
			return rep, fmt.Errorf("%w: batch %d (records %d-%d): %w", ErrBatch, batch, done+1, done+n, err)
		}
		if res.Summary.Lines != n || len(res.Results) != n {
			return rep, fmt.Errorf("%w: batch %d: the server counted %d lines, the file %d", ErrBatch, batch, res.Summary.Lines, n)
		}
		rep.Batches++
		s := &rep.Summary
		s.Lines += res.Summary.Lines
		s.Applied += res.Summary.Applied
		s.Unchanged += res.Summary.Unchanged
		s.Unknown += res.Summary.Unknown
		s.Invalid += res.Summary.Invalid
		s.Failed += res.Summary.Failed
		for _, lr := range res.Results {
			if lr.Replayed {
				rep.Replayed++
			}
			if lr.Status != inventory.BulkApplied && lr.Status != inventory.BulkUnchanged {
				rep.Problems = append(rep.Problems, Problem{Record: done + lr.Line, Result: lr})
			}
		}
		done += n
		if o.Progress != nil {
			o.Progress(done, rep.Summary)
		}
	}
}

type bulkResponse struct {
	Summary inventory.BulkSummary  `json:"summary"`
	Results []inventory.BulkResult `json:"results"`
}

// send posts one batch, retrying transport errors, 429 and 5xx with backoff (safe: the
// key makes every line apply at most once).
func send(ctx context.Context, o Options, contentType, key string, body []byte) (bulkResponse, error) {
	var last error
	for attempt := 1; attempt <= o.Retries; attempt++ {
		if attempt > 1 {
			wait := time.Duration(rand.Int64N(int64(100*time.Millisecond) << min(attempt, 6)))
			select {
			case <-ctx.Done():
				return bulkResponse{}, ctx.Err()
			case <-time.After(wait):
			}
		}
		req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(o.BaseURL, "/")+inventory.BulkPath, bytes.NewReader(body))
		if err != nil {
			return bulkResponse{}, err
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("Authorization", "Bearer "+o.AdminToken)
		resp, err := o.Client.Do(req)
		if err != nil {
			last = err
			if ctx.Err() != nil {
				return bulkResponse{}, err
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			last = err
			continue
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			var out bulkResponse
			if err := json.Unmarshal(b, &out); err != nil {
				return bulkResponse{}, fmt.Errorf("the answer is not a bulk result: %w", err)
			}
			return out, nil
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			last = fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
			continue
		default: // a 4xx will not change on retry
			return bulkResponse{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		}
	}
	return bulkResponse{}, fmt.Errorf("after %d attempts: %w", o.Retries, last)
}

// jsonBatches splits a JSON array into arrays of up to size elements, element by element.
func jsonBatches(r io.Reader, size int) func() ([]byte, int, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<16))
	started, finished := false, false
	return func() ([]byte, int, error) {
		if finished {
			return nil, 0, nil
		}
		if !started {
			tok, err := dec.Token()
			if err != nil {
				return nil, 0, err
			}
			if d, ok := tok.(json.Delim); !ok || d != '[' {
				return nil, 0, errors.New("a JSON import file must be one array of lines")
			}
			started = true
		}
		var b bytes.Buffer
		b.WriteByte('[')
		n := 0
		for n < size && dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, 0, err
			}
			if n > 0 {
				b.WriteByte(',')
			}
			b.Write(raw)
			n++
		}
		if !dec.More() {
			if _, err := dec.Token(); err != nil {
				return nil, 0, err
			}
			finished = true
		}
		b.WriteByte(']')
		return b.Bytes(), n, nil
	}
}

// csvBatches splits a CSV file into CSV bodies of up to size records, each with the header.
func csvBatches(r io.Reader, size int) func() ([]byte, int, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<16))
	cr.FieldsPerRecord = -1 // the server reports a record with the wrong number of cells
	var header []string
	finished := false
	return func() ([]byte, int, error) {
		if finished {
			return nil, 0, nil
		}
		if header == nil {
			h, err := cr.Read()
			if errors.Is(err, io.EOF) {
				return nil, 0, nil
			}
			if err != nil {
				return nil, 0, err
			}
			header = append([]string(nil), h...)
		}
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		if err := w.Write(header); err != nil {
			return nil, 0, err
		}
		n := 0
		for n < size {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				finished = true
				break
			}
			if err != nil {
				line, _ := cr.FieldPos(0)
				return nil, 0, fmt.Errorf("line %s: %w", strconv.Itoa(line), err)
			}
			if err := w.Write(rec); err != nil {
				return nil, 0, err
			}
			n++
		}
		w.Flush()
		return b.Bytes(), n, w.Error()
	}
}
