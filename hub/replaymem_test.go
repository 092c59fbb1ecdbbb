package hub

import "testing"

// Connections reading from the store shrink their pages (and batches)
// as more of them do, so that together they hold about ReplayMemory.
func TestStorePageBytesShrinksWithReaders(t *testing.T) {
	cfg := DefaultConfig()
	cfg.fillDefaults()
	h := &Hub{cfg: cfg}
	c := &conn{h: h}
	if got := c.storePageBytes(); got != cfg.PageBytes {
		t.Fatalf("no store readers: page %d, want %d", got, cfg.PageBytes)
	}
	c.setStoreReader(true)
	c.setStoreReader(true) // counted once
	if n := h.storeReaders.Load(); n != 1 {
		t.Fatalf("%d store readers, want 1", n)
	}
	if got := c.storePageBytes(); got != cfg.PageBytes {
		t.Fatalf("one store reader: page %d, want %d", got, cfg.PageBytes)
	}
	h.storeReaders.Store(200)
	if got, want := c.storePageBytes(), int(cfg.ReplayMemory/600); got != want {
		t.Fatalf("200 store readers: page %d, want %d", got, want)
	}
	h.storeReaders.Store(5000)
	if got := c.storePageBytes(); got != minStorePageBytes {
		t.Fatalf("5000 store readers: page %d, want the floor %d", got, minStorePageBytes)
	}
	h.storeReaders.Store(1)
	c.setStoreReader(false)
	if n := h.storeReaders.Load(); n != 0 {
		t.Fatalf("%d store readers after the last stopped, want 0", n)
	}
}
