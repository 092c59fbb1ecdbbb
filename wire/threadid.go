package wire

// MaxThreadIDBytes bounds thread ids before they are indexed.
const MaxThreadIDBytes = 256

// BoundThreadID trims id and bounds it to MaxThreadIDBytes. STUB.
func BoundThreadID(id string) string { return id }

// SanitizeKey returns the key-safe form of a thread id. STUB.
func SanitizeKey(id string) string { return id }
