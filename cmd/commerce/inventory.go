package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"commerce/internal/app"
	"commerce/internal/inventory"
	"commerce/internal/inventory/bulkimport"
)

const inventoryUsage = `usage: commerce inventory import [flags] FILE

Sends a stock file (CSV with a header line, or a JSON array of lines) of any size to
POST /admin/inventory/bulk in batches. Every batch carries the Idempotency-Key
<key>:<batch>, so running the same file again with the same --key resumes an import that
stopped: lines that applied before are reported as replays and never apply twice.

Flags:`

// inventoryCmd runs `commerce inventory import`.
func inventoryCmd(ctx context.Context, cfg app.Config, args []string) error {
	if len(args) == 0 || args[0] != "import" {
		return errors.New("usage: commerce inventory import [--key K] [--url URL] [--batch N] FILE")
	}
	fs := flag.NewFlagSet("inventory import", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), inventoryUsage); fs.PrintDefaults() }
	url := fs.String("url", "http://"+cfg.HTTPAddr, "base URL of the service")
	key := fs.String("key", "", "import key; reuse it to resume (default: a new random key, printed)")
	batch := fs.Int("batch", 5000, fmt.Sprintf("lines per request (at most %d)", inventory.MaxBulkLines))
	format := fs.String("format", "", "csv or json (default: from the file name's extension)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("one FILE is required")
	}
	file := fs.Arg(0)
	if *format == "" {
		switch strings.ToLower(filepath.Ext(file)) {
		case ".csv":
			*format = "csv"
		case ".json":
			*format = "json"
		default:
			return fmt.Errorf("cannot tell the format of %s: name it .csv or .json, or give --format", file)
		}
	}
	if cfg.AdminToken == "" {
		return errors.New("ADMIN_TOKEN is not set")
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if *key == "" {
		*key = "import-" + time.Now().UTC().Format("20060102T150405Z") + "-" + rand.Text()[:10]
	}
	fmt.Fprintf(os.Stderr, "importing %s (%d bytes) with key %s\n(to resume after an interruption: commerce inventory import --key %s %s)\n",
		file, st.Size(), *key, *key, file)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	counted := &countingReader{r: f}
	start := time.Now()
	progress := func(done int, s inventory.BulkSummary) {
		if *quiet {
			return
		}
		drawProgress(os.Stderr, counted.n, st.Size(), done, s, time.Since(start))
	}
	rep, err := bulkimport.Run(ctx, counted, bulkimport.Options{BaseURL: *url, AdminToken: cfg.AdminToken, Key: *key,
		Format: *format, BatchSize: *batch, Progress: progress})
	if !*quiet {
		fmt.Fprintln(os.Stderr)
	}
	s := rep.Summary
	fmt.Printf("lines %d: applied %d (of which %d replayed from an earlier run), unchanged %d, unknown %d, invalid %d, failed %d; %d batches in %s\n",
		s.Lines, s.Applied, rep.Replayed, s.Unchanged, s.Unknown, s.Invalid, s.Failed, rep.Batches, time.Since(start).Round(time.Millisecond))
	for i, p := range rep.Problems {
		if i == 20 {
			fmt.Printf("... and %d more lines not applied\n", len(rep.Problems)-20)
			break
		}
		name := p.Result.SKU
		if name == "" && p.Result.VariantID != nil {
			name = p.Result.VariantID.String()
		}
		msg := ""
		if p.Result.Error != nil {
			msg = p.Result.Error.Code + ": " + p.Result.Error.Message
		}
		fmt.Printf("  record %d %s: %s %s\n", p.Record, name, p.Result.Status, msg)
	}
	if err != nil {
		return fmt.Errorf("%w\nresume with: commerce inventory import --key %s %s", err, *key, file)
	}
	if s.Failed > 0 {
		return fmt.Errorf("%d lines failed; run again with --key %s to retry them (applied lines are not applied twice)", s.Failed, *key)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// drawProgress redraws one status line: a bar by bytes read, lines done and the rate.
func drawProgress(w io.Writer, read, size int64, done int, s inventory.BulkSummary, elapsed time.Duration) {
	const width = 30
	frac := 1.0
	if size > 0 {
		frac = min(float64(read)/float64(size), 1)
	}
	fill := int(frac * width)
	rate := float64(done) / max(elapsed.Seconds(), 0.001)
	fmt.Fprintf(w, "\r[%s%s] %3.0f%%  %d lines  %.0f lines/s  applied %d unchanged %d problems %d ",
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), frac*100, done, rate,
		s.Applied, s.Unchanged, s.Unknown+s.Invalid+s.Failed)
}
