package inventory

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"commerce/internal/platform/httpx"
)

// MaxBulkBody bounds the body of one bulk sync request (10 000 lines of up to about
// 1.6 KB each: a 100-character SKU and a 200-character reason in 4-byte characters).
const MaxBulkBody = 16 << 20

// bulkLineJSON is one element of a JSON bulk body.
type bulkLineJSON struct {
	SKU       *string `json:"sku"`
	VariantID *string `json:"variant_id"`
	OnHand    *int64  `json:"on_hand"`
	Delta     *int64  `json:"delta"`
	Reason    *string `json:"reason"`
}

func tooManyLines() error {
	return httpx.New(http.StatusRequestEntityTooLarge, httpx.CodePayloadTooLarge,
		fmt.Sprintf("more than %d lines: split the sync into several requests", MaxBulkLines))
}

func bodyReadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return httpx.New(http.StatusRequestEntityTooLarge, httpx.CodePayloadTooLarge,
			fmt.Sprintf("request body exceeds %d MiB", MaxBulkBody>>20))
	}
	return nil
}

// ParseBulkJSON reads a JSON array of lines from r one element at a time (the body is
// never held whole). A line that is not a valid line object (unknown or misspelt field,
// wrong type, missing or conflicting fields) comes back with Invalid set; only a body
// that is not a JSON array at all, more than MaxBulkLines lines, or a read error fails
// the whole request (an *httpx.Error, 400 or 413).
func ParseBulkJSON(r io.Reader) ([]BulkLine, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	syntax := func(err error) error {
		if e := bodyReadError(err); e != nil {
			return e
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return httpx.BadRequest("the body ends before the JSON array does")
		}
		return httpx.BadRequest("the body must be a JSON array of line objects: " + err.Error())
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, httpx.BadRequest("the body must be a JSON array of line objects")
	}
	var lines []BulkLine
	for dec.More() {
		if len(lines) == MaxBulkLines {
			return nil, tooManyLines()
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntax(err)
		}
		lines = append(lines, jsonLine(raw))
	}
	if _, err := dec.Token(); err != nil { // the closing ]
		return nil, syntax(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, syntax(err)
		}
		return nil, httpx.BadRequest("unexpected data after the JSON array")
	}
	return lines, nil
}

func jsonLine(raw json.RawMessage) BulkLine {
	var j bulkLineJSON
	if err := httpx.DecodeStrict(raw, &j); err != nil {
		var he *httpx.Error
		msg := "not a line object"
		if errors.As(err, &he) {
			msg = he.Message
			for f, m := range detailFields(he) {
				msg = f + " " + m
				break
			}
		}
		if len(raw) > 0 && raw[0] != '{' {
			msg = "a line must be a JSON object"
		}
		return BulkLine{Invalid: msg, SKU: skuOf(j)}
	}
	l := BulkLine{OnHand: j.OnHand, Delta: j.Delta}
	if j.SKU != nil {
		l.SKU = *j.SKU
		if l.SKU == "" {
			l.Invalid = "sku must not be empty"
		}
	}
	if j.Reason != nil {
		l.Reason = *j.Reason
		if l.Reason == "" {
			l.Invalid = "reason must be between 1 and 200 characters"
		}
	}
	if j.VariantID != nil {
		id, err := uuid.Parse(*j.VariantID)
		if err != nil || id == uuid.Nil {
			l.Invalid = "variant_id is not a UUID"
		} else {
			l.VariantID = id
		}
	}
	if l.Invalid == "" {
		l.Invalid = CheckBulkLine(l)
	}
	return l
}

func skuOf(j bulkLineJSON) string {
	if j.SKU != nil && len(*j.SKU) <= 100 {
		return *j.SKU
	}
	return ""
}

// detailFields returns the field messages of a validation error, if any.
func detailFields(e *httpx.Error) map[string]string {
	f, _ := e.Details["fields"].(map[string]any)
	out := make(map[string]string, len(f))
	for k, v := range f {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// bulkColumns are the columns a CSV body may have (a header line names them, any order).
var bulkColumns = map[string]bool{"sku": true, "variant_id": true, "on_hand": true, "delta": true, "reason": true}

// ParseBulkCSV reads a CSV body from r one record at a time: a header line naming some of
// sku, variant_id, on_hand, delta and reason, then one line per record (an empty cell is
// an absent field). A record with the wrong number of cells or a value that does not
// parse comes back with Invalid set; a missing or unknown header, broken quoting, more
// than MaxBulkLines lines or a read error fails the whole request (400 or 413).
func ParseBulkCSV(r io.Reader) ([]BulkLine, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if e := bodyReadError(err); e != nil {
			return nil, e
		}
		if errors.Is(err, io.EOF) {
			return nil, httpx.BadRequest("the CSV body needs a header line (sku or variant_id, on_hand or delta, reason)")
		}
		return nil, httpx.BadRequest("CSV header: " + err.Error())
	}
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if !bulkColumns[h] || seen[h] {
			return nil, httpx.BadRequest(fmt.Sprintf("CSV header: unknown or repeated column %q (allowed: sku, variant_id, on_hand, delta, reason)", h))
		}
		seen[h], cols[i] = true, h
	}
	var lines []BulkLine
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return lines, nil
		}
		if len(lines) == MaxBulkLines {
			return nil, tooManyLines()
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
			lines = append(lines, BulkLine{Invalid: fmt.Sprintf("%d cells, the header has %d", len(rec), len(cols))})
			continue
		}
		if err != nil {
			if e := bodyReadError(err); e != nil {
				return nil, e
			}
			return nil, httpx.BadRequest("CSV: " + err.Error())
		}
		lines = append(lines, csvLine(cols, rec))
	}
}

func csvLine(cols, rec []string) BulkLine {
	var l BulkLine
	num := func(name, s string) *int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil && l.Invalid == "" {
			l.Invalid = name + " is not an integer"
		}
		return &n
	}
	for i, v := range rec {
		if v == "" {
			continue
		}
		switch cols[i] {
		case "sku":
			l.SKU = v
		case "variant_id":
			id, err := uuid.Parse(strings.TrimSpace(v))
			if (err != nil || id == uuid.Nil) && l.Invalid == "" {
				l.Invalid = "variant_id is not a UUID"
			}
			l.VariantID = id
		case "on_hand":
			l.OnHand = num("on_hand", v)
		case "delta":
			l.Delta = num("delta", v)
		case "reason":
			l.Reason = v
		}
	}
	if len(l.SKU) > 100 {
		l.SKU = ""
		if l.Invalid == "" {
			l.Invalid = "sku is longer than 100 characters"
		}
	}
	if l.Invalid == "" {
		l.Invalid = CheckBulkLine(l)
	}
	return l
}
