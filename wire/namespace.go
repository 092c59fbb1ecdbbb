package wire

import (
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// NormalizeBrokers canonicalises a comma-separated broker list for the resume
// namespace (reference §4.3): split on ',', trim each entry, drop empty
// entries, sort ascending (byte-wise) and join with ','. Duplicates are kept,
// as in the reference.
func NormalizeBrokers(brokers string) string {
	parts := strings.Split(brokers, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// ResumeNamespace is the reference resume namespace (reference §4.3), also
// used as the Redis key prefix. Without a cluster id it is "v1_" +
// base64url-no-padding("topic=<topic>;group=<group>;brokers=<normalized>");
// with a non-empty cluster id it is "v2_" + base64url-no-padding(
// "cluster=<id>;topic=<topic>;group=<group>;brokers=<normalized>"). The result
// only contains [A-Za-z0-9_-].
func ResumeNamespace(clusterID, topic, group, brokers string) string {
	raw := "topic=" + topic + ";group=" + group + ";brokers=" + NormalizeBrokers(brokers)
	version := "v1_"
	if clusterID != "" {
		raw = "cluster=" + clusterID + ";" + raw
		version = "v2_"
	}
	return version + base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// EpochFor names the history a cursor belongs to (DECISIONS D2):
// hex of the first 8 bytes of the Kafka topic id, "-", then the store's reset
// generation in decimal, e.g. "73acb13b7c6d0c5d-0".
func EpochFor(topicID [16]byte, generation uint64) string {
	return hex.EncodeToString(topicID[:8]) + "-" + strconv.FormatUint(generation, 10)
}

// NamespaceWithEpoch is the resume_namespace reported by /version (DECISIONS
// D2): the reference namespace, "_", then the epoch.
func NamespaceWithEpoch(ns, epoch string) string {
	return ns + "_" + epoch
}
