package memory_test

import (
	"testing"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
	"github.com/dashstream/dashstream/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, o storetest.Options) store.Store {
		return memory.New(memory.Config{Retention: o.Retention})
	})
}
