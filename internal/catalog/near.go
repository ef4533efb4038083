package catalog

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// nearCache is the in-process tier in front of the L2: per product, the encoded body of
// GET /v1/products/{id} (served as it is), its ETag, and the variants carts price from.
//
// It is bounded in entries and bytes, and every entry expires TTL after the moment its
// data was READ from Redis or PostgreSQL (not when it was stored), so an entry is never
// served more than TTL after a write committed before that read, whatever happens to the
// invalidation messages. Invalidations (this replica's writes directly, other replicas'
// over Redis pub/sub, which is at-most-once) drop entries older than the version they
// name and leave a floor, so a fill that read the old version before the invalidation
// arrived cannot put it back. Safe for concurrent use.
type nearCache struct {
	ttl        time.Duration
	maxEntries int
	maxBytes   int

	mu        sync.RWMutex
	gens      [2]genObservation // the two latest observations of the catalog generation, newest first
	entries   map[uuid.UUID]*nearEntry
	floors    map[uuid.UUID]floor
	variants  map[uuid.UUID]uuid.UUID // variant → product (never changes)
	bytes     int
	clearedAt time.Time // fills of data read before this are refused
}

// nearEntry is one product as the near-cache holds it. missing is true for a product that
// does not exist; body is nil unless the product is active.
type nearEntry struct {
	product Product // shared: do not modify
	version int64
	gen     string // the catalog generation its data is at least as new as ("": unknown)
	missing bool
	body    []byte
	etag    string
	infos   []VariantInfo
	expires time.Time
	size    int
}

// genObservation is one read of the catalog generation (bumped by every write after its
// product's L2 entry was overwritten): it was gen at some moment between sent and recv.
type genObservation struct {
	gen        string
	sent, recv time.Time
}

// floor is the lowest version a fill of a product may store, until expires.
type floor struct {
	version int64
	expires time.Time
}

func newNearCache(ttl time.Duration, maxEntries, maxBytes int) *nearCache {
	return &nearCache{ttl: ttl, maxEntries: maxEntries, maxBytes: maxBytes,
		entries: map[uuid.UUID]*nearEntry{}, floors: map[uuid.UUID]floor{}, variants: map[uuid.UUID]uuid.UUID{}}
}

// enabled reports whether the near-cache holds anything at all (a zero TTL turns it off).
func (n *nearCache) enabled() bool { return n != nil && n.ttl > 0 && n.maxEntries > 0 }

// get returns the fresh entry of id, if any.
func (n *nearCache) get(id uuid.UUID, now time.Time) (*nearEntry, bool) {
	if !n.enabled() {
		return nil, false
	}
	n.mu.RLock()
	e, ok := n.entries[id]
	cur := n.gens[0]
	n.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if now.Before(e.expires) || n.sameGeneration(e, cur, now) {
		return e, true
	}
	return nil, false
}

// sameGeneration reports whether e, past its TTL, is still current: no write has bumped
// the catalog generation since e's data was read, as a read of the generation sent at
// most ttl/2 ago shows. Every write bumps it after overwriting its L2 entry, so a lost
// invalidation message costs at most ttl/2 here, never more than the TTL.
func (n *nearCache) sameGeneration(e *nearEntry, cur genObservation, now time.Time) bool {
	return e.gen != "" && e.gen == cur.gen && now.Sub(cur.sent) <= n.ttl/2
}

// observe records a read of the catalog generation (gen "" when it is missing).
func (n *nearCache) observe(gen string, sent, recv time.Time) {
	if !n.enabled() {
		return
	}
	n.mu.Lock()
	n.gens[1], n.gens[0] = n.gens[0], genObservation{gen: gen, sent: sent, recv: recv}
	n.mu.Unlock()
}

// genAt is the generation that data read at readAt is at least as new as: the latest
// observation received before the read began (n.mu held).
func (n *nearCache) genAt(readAt time.Time) string {
	for _, o := range n.gens {
		if !o.recv.IsZero() && !o.recv.After(readAt) {
			return o.gen
		}
	}
	return ""
}

// productOf returns the product a variant belongs to, when the near-cache knows it.
func (n *nearCache) productOf(variant uuid.UUID) (uuid.UUID, bool) {
	if !n.enabled() {
		return uuid.Nil, false
	}
	n.mu.RLock()
	pid, ok := n.variants[variant]
	n.mu.RUnlock()
	return pid, ok
}

// newNearEntry builds the entry of a product read at readAt (the body encoded once here,
// served as it is on every hit).
func newNearEntry(p Product, readAt time.Time, ttl time.Duration) (*nearEntry, error) {
	e := &nearEntry{product: p, version: p.Version, infos: p.variantInfos(), expires: readAt.Add(ttl)}
	if p.Status == StatusActive {
		b, err := json.Marshal(toJSON(p))
		if err != nil {
			return nil, err
		}
		e.body = append(b, '\n')
		e.etag = etagOf(p.Version)
	}
	e.size = 256 + len(e.body) + 160*len(e.infos)
	return e, nil
}

// etagOf is the strong ETag of a product's public representation: its version, which
// grows with every write to the product or its variants.
func etagOf(version int64) string { return `"v` + strconv.FormatInt(version, 10) + `"` }

// ttlOr0 is the entries' lifetime (0 without a near-cache).
func (n *nearCache) ttlOr0() time.Duration {
	if !n.enabled() {
		return 0
	}
	return n.ttl
}

// put stores the product read at readAt (see storeEntry).
func (n *nearCache) put(p Product, readAt time.Time) {
	if !n.enabled() {
		return
	}
	e, err := newNearEntry(p, readAt, n.ttl)
	if err != nil {
		return
	}
	n.storeEntry(p, e, readAt)
}

// storeEntry stores e, the entry of p read at readAt, unless a newer version is held, an
// invalidation left a higher floor, the near-cache was cleared after the read, or the
// data is already older than the TTL.
func (n *nearCache) storeEntry(p Product, e *nearEntry, readAt time.Time) {
	if !n.enabled() {
		return
	}
	now := time.Now()
	if !now.Before(readAt.Add(n.ttl)) {
		return
	}
	n.store(p.ID, e, readAt, now, p.Variants)
}

// putMissing stores "no such product", read at readAt.
func (n *nearCache) putMissing(id uuid.UUID, readAt time.Time) {
	if !n.enabled() {
		return
	}
	now := time.Now()
	if !now.Before(readAt.Add(n.ttl)) {
		return
	}
	n.store(id, &nearEntry{missing: true, expires: readAt.Add(n.ttl), size: 64}, readAt, now, nil)
}

func (n *nearCache) store(id uuid.UUID, e *nearEntry, readAt, now time.Time, vs []Variant) {
	n.mu.Lock()
	defer n.mu.Unlock()
	// Versioned fill: never below an invalidation's floor, never over a newer entry, never
	// with data read before the last clear.
	if readAt.Before(n.clearedAt) {
		return
	}
	if f, ok := n.floors[id]; ok && now.Before(f.expires) && e.version < f.version {
		return
	}
	e.gen = n.genAt(readAt)
	if old, ok := n.entries[id]; ok {
		if old.version > e.version && (now.Before(old.expires) || n.sameGeneration(old, n.gens[0], now)) {
			return
		}
		n.bytes -= old.size
		delete(n.entries, id)
	}
	n.makeRoom(e.size, now)
	n.entries[id] = e
	n.bytes += e.size
	if len(n.variants) >= 4*n.maxEntries {
		clear(n.variants)
	}
	for _, v := range vs {
		n.variants[v.ID] = id
	}
}

// makeRoom evicts entries until one of size fits: the expired ones first, then arbitrary
// ones (map order), an eighth of the bound at a time so eviction is not paid per insert.
// n.mu is held.
func (n *nearCache) makeRoom(size int, now time.Time) {
	if len(n.entries) < n.maxEntries && n.bytes+size <= n.maxBytes {
		return
	}
	for id, e := range n.entries {
		if !now.Before(e.expires) {
			n.bytes -= e.size
			delete(n.entries, id)
		}
	}
	wantEntries, wantBytes := n.maxEntries-n.maxEntries/8-1, n.maxBytes-n.maxBytes/8-size
	for id, e := range n.entries {
		if len(n.entries) <= wantEntries && n.bytes <= wantBytes {
			break
		}
		n.bytes -= e.size
		delete(n.entries, id)
	}
	for id, f := range n.floors {
		if !now.Before(f.expires) {
			delete(n.floors, id)
		}
	}
}

// invalidate drops id's entry unless it already holds version or newer, and keeps fills
// below version out for one TTL (after that, any data read before now has expired anyway).
func (n *nearCache) invalidate(id uuid.UUID, version int64) {
	if !n.enabled() {
		return
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if e, ok := n.entries[id]; ok && e.version < version {
		n.bytes -= e.size
		delete(n.entries, id)
	}
	if f, ok := n.floors[id]; !ok || f.version < version || !now.Before(f.expires) {
		n.floors[id] = floor{version: version, expires: now.Add(n.ttl)}
	}
	if len(n.floors) > 4*n.maxEntries {
		for k, f := range n.floors {
			if !now.Before(f.expires) {
				delete(n.floors, k)
			}
		}
	}
}

// clear drops everything and refuses fills of data read before now (used when
// invalidation messages may have been missed: the subscription was re-established).
func (n *nearCache) clear() {
	if !n.enabled() {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.entries)
	n.bytes = 0
	n.clearedAt = time.Now()
	n.gens = [2]genObservation{}
}

// len returns the number of entries and their accounted bytes.
func (n *nearCache) len() (int, int) {
	if !n.enabled() {
		return 0, 0
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.entries), n.bytes
}
