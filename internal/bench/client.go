package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client sends requests to the service under test. It only ever talks to a loopback
// address: New refuses any other base URL.
type Client struct {
	base string
	hc   *http.Client
	// Admin is the operator token sent by AdminDo.
	Admin string
}

// NewClient returns a client for base (http://127.0.0.1:port) keeping up to conns idle
// keep-alive connections. It returns an error when base is not a loopback address.
func NewClient(base string, conns int, admin string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("bench: refusing to load %q: only loopback addresses", base)
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &Client{base: base, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, Admin: admin}, nil
}

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Response is a status and a body.
type Response struct {
	Status int
	Body   []byte
}

// Do sends one request. body is marshalled to JSON unless it is nil, a string or []byte.
// headers are pairs: name, value, name, value…
func (c *Client) Do(ctx context.Context, method, path string, body any, headers ...string) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return Response{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	// One allocation of the announced size (io.ReadAll grows from 512 bytes by doubling):
	// the generator shares the CPUs with what it measures, so it should cost little.
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n <= 1<<20 {
		buf.Grow(int(n) + 1) // + 1: ReadFrom then sees EOF without growing
	}
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return Response{Status: resp.StatusCode}, err
	}
	return Response{Status: resp.StatusCode, Body: buf.Bytes()}, nil
}

// AdminDo sends a request with the operator token.
func (c *Client) AdminDo(ctx context.Context, method, path string, body any) (Response, error) {
	return c.Do(ctx, method, path, body, "Authorization", "Bearer "+c.Admin)
}

// Expect returns an error unless r has one of the statuses.
func (r Response) Expect(statuses ...int) error {
	for _, s := range statuses {
		if r.Status == s {
			return nil
		}
	}
	return fmt.Errorf("status %d: %s", r.Status, truncate(string(r.Body), 160))
}

// ErrorCode returns the contract's error code of an error response ("" when none).
func (r Response) ErrorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// Decode unmarshals the body into v.
func (r Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode %d response: %w: %s", r.Status, err, truncate(string(r.Body), 160))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
