package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
)

// MemoryFigure is a Redis memory cost measured with MEMORY USAGE (SAMPLES 0: every element
// counted).
type MemoryFigure struct {
	What    string  `json:"what"`
	Bytes   float64 `json:"bytes"`
	Keys    int     `json:"keys"`
	Units   int64   `json:"units"`
	Method  string  `json:"method"`
	Pattern string  `json:"pattern,omitempty"`
}

// Line is the one-line summary printed for a figure.
func (m MemoryFigure) Line() string {
	return fmt.Sprintf("memory: %-28s %8.0f bytes  (%s)", m.What, m.Bytes, m.Method)
}

// keyIndex is every key of the run's key space, grouped by the content of its hash tag
// (the entity id: a product, a variant, "session:<id>", a checkout…).
type keyIndex struct {
	byTag map[string][]string
	total int
}

// scanSpace lists the keys of space (on every master in Cluster).
func scanSpace(ctx context.Context, rdb redis.UniversalClient, space rkey.Space) (keyIndex, error) {
	idx := keyIndex{byTag: map[string][]string{}}
	var keys []string
	collect := func(ctx context.Context, c *redis.Client) ([]string, error) {
		var out []string
		it := c.Scan(ctx, 0, escapeGlob(string(space))+"*", 1000).Iterator()
		for it.Next(ctx) {
			out = append(out, it.Val())
		}
		return out, it.Err()
	}
	switch cc := rdb.(type) {
	case *redis.ClusterClient:
		ch := make(chan []string, 64)
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			ks, err := collect(ctx, c)
			ch <- ks
			return err
		})
		close(ch)
		for ks := range ch {
			keys = append(keys, ks...)
		}
		if err != nil {
			return idx, err
		}
	case *redis.Client:
		ks, err := collect(ctx, cc)
		if err != nil {
			return idx, err
		}
		keys = ks
	}
	for _, k := range keys {
		idx.byTag[hashTag(k)] = append(idx.byTag[hashTag(k)], k)
	}
	idx.total = len(keys)
	return idx, nil
}

// hashTag returns what is between the first { and the next } of key ("" when none).
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j < 0 {
		return ""
	}
	return key[i+1 : i+1+j]
}

// keysFor returns the keys whose hash tag is id or ends with ":"+id (cart:{session:<id>}).
func (x keyIndex) keysFor(id string) []string {
	if ks, ok := x.byTag[id]; ok {
		return ks
	}
	for tag, ks := range x.byTag {
		if strings.HasSuffix(tag, ":"+id) {
			return ks
		}
	}
	return nil
}

// memoryOf sums MEMORY USAGE … SAMPLES 0 over keys.
func memoryOf(ctx context.Context, rdb redis.UniversalClient, keys []string) (int64, error) {
	var sum int64
	for _, k := range keys {
		n, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err == redis.Nil {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("MEMORY USAGE %s: %w", k, err)
		}
		sum += n
	}
	return sum, nil
}

// keyPatterns shortens keys to their shape for the report (ids replaced by *).
func keyPatterns(space rkey.Space, keys []string) string {
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		k = strings.TrimPrefix(k, string(space))
		if t := hashTag(k); t != "" {
			prefix := ""
			if i := strings.LastIndexByte(t, ':'); i >= 0 {
				prefix = t[:i+1]
			}
			k = strings.Replace(k, "{"+t+"}", "{"+prefix+"*}", 1)
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return strings.Join(out, ", ")
}

// memory measures the Redis cost of a cart line, a product cache entry, a hold, a checkout
// and a session on keys the run created.
func (r *runner) memory(ctx context.Context) error {
	rdb := r.env.App.Redis
	idx, err := scanSpace(ctx, rdb, r.env.Space)
	if err != nil {
		return err
	}
	add := func(f MemoryFigure) {
		r.rep.Memory = append(r.rep.Memory, f)
		r.printf("%s\n", f.Line())
	}
	// Product cache entries: the most popular products (certainly cached after the warm
	// run): their details key and the variant → product keys of their variants.
	if len(r.cat.Products) > 0 {
		var keys []string
		n := 0
		for _, p := range r.cat.Products[:min(200, len(r.cat.Products))] {
			ks := idx.keysFor(p.ID.String())
			if len(ks) == 0 {
				continue
			}
			n++
			keys = append(keys, ks...)
			for _, v := range p.Variants {
				for _, k := range idx.keysFor(v.String()) {
					if !strings.HasPrefix(strings.TrimPrefix(k, string(r.env.Space)), "inv:") {
						keys = append(keys, k)
					}
				}
			}
		}
		if n > 0 {
			sum, err := memoryOf(ctx, rdb, keys)
			if err != nil {
				return err
			}
			add(MemoryFigure{What: "per product cache entry", Bytes: float64(sum) / float64(n), Keys: len(keys), Units: int64(n),
				Method: fmt.Sprintf("Σ MEMORY USAGE of the cache keys of %d cached products with %d variants each (%s) / %d",
					n, r.opt.VariantsPer, keyPatterns(r.env.Space, keys), n), Pattern: keyPatterns(r.env.Space, keys)})
		}
	}
	// Holds: every key of the flash-sale variant (counter, holds, version) / units held.
	holdFigure := func(what string, variant string, holds int64) error {
		var keys []string
		for _, k := range idx.keysFor(variant) {
			if strings.HasPrefix(strings.TrimPrefix(k, string(r.env.Space)), "inv:") {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 || holds <= 0 {
			return nil
		}
		sum, err := memoryOf(ctx, rdb, keys)
		if err != nil {
			return err
		}
		add(MemoryFigure{What: what, Bytes: float64(sum) / float64(holds), Keys: len(keys), Units: holds,
			Method: fmt.Sprintf("Σ MEMORY USAGE of the variant's keys (%s) / %d holds", keyPatterns(r.env.Space, keys), holds)})
		return nil
	}
	if f := r.rep.FlashSale; f != nil {
		if err := holdFigure("per hold (flash sale SKU)", f.Variant, f.Created); err != nil {
			return err
		}
	}
	// Checkouts created by the flash sale.
	if len(r.flashCheckouts) > 0 {
		var keys []string
		n := 0
		for _, id := range r.flashCheckouts[:min(200, len(r.flashCheckouts))] {
			if ks := idx.keysFor(id); len(ks) > 0 {
				n++
				keys = append(keys, ks...)
			}
		}
		if n > 0 {
			sum, err := memoryOf(ctx, rdb, keys)
			if err != nil {
				return err
			}
			add(MemoryFigure{What: "per checkout (1 line)", Bytes: float64(sum) / float64(n), Keys: len(keys), Units: int64(n),
				Method: fmt.Sprintf("Σ MEMORY USAGE of the keys of %d checkouts / %d; keys: %s", n, n, keyPatterns(r.env.Space, keys))})
		}
	}
	// Cart lines: the churn carts, whose lines the clients tracked exactly.
	var cartKeys []string
	var lines int64
	for _, w := range r.churnCarts {
		for _, c := range w {
			if len(c.order) == 0 {
				continue
			}
			tag := "session:" + sessionID(c.sid)
			for _, k := range idx.keysFor(tag) {
				if hashTag(k) == tag {
					cartKeys = append(cartKeys, k)
				}
			}
			lines += int64(len(c.order))
		}
	}
	if lines > 0 && len(cartKeys) > 0 {
		sum, err := memoryOf(ctx, rdb, cartKeys)
		if err != nil {
			return err
		}
		add(MemoryFigure{What: "per cart line (churn carts)", Bytes: float64(sum) / float64(lines), Keys: len(cartKeys), Units: lines,
			Method: fmt.Sprintf("Σ MEMORY USAGE of %d cart keys (%s) / %d lines (key overhead included, %.1f lines per cart)",
				len(cartKeys), keyPatterns(r.env.Space, cartKeys), lines, float64(lines)/float64(len(cartKeys)))})
	}
	if err := r.marginalCartLine(ctx, add); err != nil {
		r.note("marginal cart line not measured: %v", err)
	}
	// Sessions.
	if len(r.sessions) > 0 {
		var keys []string
		for _, sid := range r.sessions {
			keys = append(keys, idx.byTag[sessionID(sid)]...)
		}
		if len(keys) > 0 {
			sum, err := memoryOf(ctx, rdb, keys)
			if err != nil {
				return err
			}
			add(MemoryFigure{What: "per session", Bytes: float64(sum) / float64(len(r.sessions)), Keys: len(keys),
				Units: int64(len(r.sessions)), Method: "Σ MEMORY USAGE of the session keys (" + keyPatterns(r.env.Space, keys) + ") / sessions"})
		}
	}
	info, err := rdb.Info(ctx, "memory").Result()
	if err == nil {
		r.note("Redis INFO memory at the end of the run: %s (all tenants of this Redis); keys in the run's space: %d",
			infoField(info, "used_memory_human"), idx.total)
	}
	return nil
}

// sessionID is the session's id in a credential "<id>.<expiry>.<mac>" (X-Session-ID):
// the service keys a session's records and its cart by the id alone.
func sessionID(credential string) string {
	id, _, _ := strings.Cut(credential, ".")
	return id
}

// marginalCartLine measures what one more line costs: a fresh cart with 1 line, then with
// 11 lines; (m11 − m1) / 10.
func (r *runner) marginalCartLine(ctx context.Context, add func(MemoryFigure)) error {
	if err := r.needs("POST /v1/sessions", "POST /v1/cart/items"); err != nil {
		return err
	}
	if len(r.cat.Variants) < 11 {
		return fmt.Errorf("catalog too small")
	}
	sid, _, err := newSession(ctx, r.env.Client)
	if err != nil {
		return err
	}
	cartMemory := func() (int64, []string, error) {
		idx, err := scanSpace(ctx, r.env.App.Redis, r.env.Space)
		if err != nil {
			return 0, nil, err
		}
		keys := idx.byTag["session:"+sessionID(sid)]
		if len(keys) == 0 {
			return 0, nil, fmt.Errorf("no cart key found for the session")
		}
		n, err := memoryOf(ctx, r.env.App.Redis, keys)
		return n, keys, err
	}
	if _, err := addToCart(ctx, r.env.Client, sid, r.cat.Variants[len(r.cat.Variants)-1], 1); err != nil {
		return err
	}
	m1, keys, err := cartMemory()
	if err != nil {
		return err
	}
	for i := 0; i < 10; i++ {
		if _, err := addToCart(ctx, r.env.Client, sid, r.cat.Variants[len(r.cat.Variants)-2-i], 1); err != nil {
			return err
		}
	}
	m11, _, err := cartMemory()
	if err != nil {
		return err
	}
	add(MemoryFigure{What: "per cart line (marginal)", Bytes: float64(m11-m1) / 10, Keys: len(keys), Units: 10,
		Method: fmt.Sprintf("(MEMORY USAGE with 11 lines − with 1 line) / 10 on %s; the 1-line cart is %d bytes",
			keyPatterns(r.env.Space, keys), m1)})
	return nil
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
