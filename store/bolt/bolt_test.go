package bolt

import (
	"path/filepath"
	"testing"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/storetest"
)

// openTest opens a durable store in dir for the contract suite.
func openTest(t *testing.T, o storetest.Options) store.Store {
	t.Helper()
	s, err := Open(filepath.Join(o.Dir, FileName), Options{Retention: o.Retention, Fsync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, openTest)
}
