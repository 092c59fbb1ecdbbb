package ingest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store/memory"
)

// testPKI is a CA with a server and a client certificate, written to dir.
type testPKI struct {
	caFile, clientCert, clientKey, encKey string
	server                                tls.Certificate
	caPool                                *x509.CertPool
}

func newTestPKI(t *testing.T, serverHosts ...string) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dashstream test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, hosts []string, usage x509.ExtKeyUsage, serial int64) (certPEM []byte, key *rsa.PrivateKey) {
		key, _ = rsa.GenerateKey(rand.Reader, 2048)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key
	}
	srvPEM, srvKey := issue("broker", serverHosts, x509.ExtKeyUsageServerAuth, 2)
	srv, err := tls.X509KeyPair(srvPEM, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(srvKey)}))
	if err != nil {
		t.Fatal(err)
	}
	cliPEM, cliKey := issue("client", nil, x509.ExtKeyUsageClientAuth, 3)
	p := testPKI{
		caFile: filepath.Join(dir, "ca.pem"), clientCert: filepath.Join(dir, "client.pem"),
		clientKey: filepath.Join(dir, "client.key"), encKey: filepath.Join(dir, "client-enc.key"),
		server: srv, caPool: x509.NewCertPool(),
	}
	p.caPool.AddCert(caCert)
	write := func(path string, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	write(p.clientCert, cliPEM)
	write(p.clientKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(cliKey)}))
	//nolint:staticcheck // legacy PEM encryption is what KAFKA_SSL_KEY_PASSWORD users have
	enc, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(cliKey), []byte("s3cret"), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	write(p.encKey, pem.EncodeToMemory(enc))
	return p
}

// serverTLS is the broker side: mutual TLS with the test CA.
func (p testPKI) serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.caPool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// pingWith connects with ClientOpts(cfg) and lists the topic's metadata.
func pingWith(t *testing.T, cfg ingest.Config) error {
	t.Helper()
	opts, err := ingest.ClientOpts(cfg, nil)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, "sec-topic")
	if err != nil {
		return err
	}
	return md.Topics["sec-topic"].Err
}

func TestSecuritySASLPlain(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sec-topic"),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", "alice", "wonderland"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := ingest.Config{Brokers: c.ListenAddrs(), Security: ingest.Security{
		Protocol: ingest.ProtocolSASLPlaintext, SASLMechanism: ingest.MechanismPlain, SASLUsername: "alice", SASLPassword: "wonderland",
	}}
	if err := pingWith(t, cfg); err != nil {
		t.Fatalf("SASL/PLAIN with the right password: %v", err)
	}
	cfg.Security.SASLPassword = "wrong"
	if err := pingWith(t, cfg); err == nil {
		t.Fatal("SASL/PLAIN with a wrong password succeeded")
	}
	cfg.Security = ingest.Security{}
	if err := pingWith(t, cfg); err == nil {
		t.Fatal("plaintext without SASL succeeded against a SASL broker")
	}
}

func TestSecuritySASLScram(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sec-topic"),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "bob", "builder"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := ingest.Config{Brokers: c.ListenAddrs(), Security: ingest.Security{
		Protocol: ingest.ProtocolSASLPlaintext, SASLMechanism: ingest.MechanismScramSHA512, SASLUsername: "bob", SASLPassword: "builder",
	}}
	if err := pingWith(t, cfg); err != nil {
		t.Fatalf("SCRAM-SHA-512: %v", err)
	}
}

func TestSecurityTLS(t *testing.T) {
	pki := newTestPKI(t, "127.0.0.1")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sec-topic"), kfake.TLS(pki.serverTLS()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	base := ingest.Security{Protocol: ingest.ProtocolSSL, SSLCALocation: pki.caFile,
		SSLCertificateLocation: pki.clientCert, SSLKeyLocation: pki.clientKey}
	cfg := ingest.Config{Brokers: c.ListenAddrs(), Security: base}
	if err := pingWith(t, cfg); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	enc := base
	enc.SSLKeyLocation, enc.SSLKeyPassword = pki.encKey, "s3cret"
	if err := pingWith(t, ingest.Config{Brokers: c.ListenAddrs(), Security: enc}); err != nil {
		t.Fatalf("mutual TLS with an encrypted key: %v", err)
	}
	enc.SSLKeyPassword = "nope"
	if _, err := ingest.ClientOpts(ingest.Config{Brokers: c.ListenAddrs(), Security: enc}, nil); err == nil ||
		!strings.Contains(err.Error(), "KAFKA_SSL_KEY_") {
		// Legacy PEM decryption detects a wrong password by padding, so
		// about 1 in 256 wrong passwords fails at key parsing instead.
		t.Fatalf("wrong key password: err = %v, want one naming KAFKA_SSL_KEY_PASSWORD or _LOCATION", err)
	}
	noCert := ingest.Security{Protocol: ingest.ProtocolSSL, SSLCALocation: pki.caFile}
	if err := pingWith(t, ingest.Config{Brokers: c.ListenAddrs(), Security: noCert}); err == nil {
		t.Fatal("TLS without the client certificate succeeded against a broker requiring one")
	}
	if err := pingWith(t, ingest.Config{Brokers: c.ListenAddrs()}); err == nil {
		t.Fatal("plaintext succeeded against a TLS broker")
	}
}

func TestSecurityTLSEndpointAlgorithm(t *testing.T) {
	pki := newTestPKI(t, "broker.example.invalid") // the name does not match 127.0.0.1
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sec-topic"), kfake.TLS(pki.serverTLS()),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", "alice", "wonderland"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sec := ingest.Security{Protocol: ingest.ProtocolSASLSSL, SSLCALocation: pki.caFile,
		SSLCertificateLocation: pki.clientCert, SSLKeyLocation: pki.clientKey,
		SASLMechanism: ingest.MechanismPlain, SASLUsername: "alice", SASLPassword: "wonderland"}
	if err := pingWith(t, ingest.Config{Brokers: c.ListenAddrs(), Security: sec}); err == nil {
		t.Fatal("host name verification passed for a certificate of another host")
	}
	sec.SSLEndpointAlgorithm = "none"
	if err := pingWith(t, ingest.Config{Brokers: c.ListenAddrs(), Security: sec}); err != nil {
		t.Fatalf("sasl_ssl with KAFKA_SSL_ENDPOINT_ALGORITHM=none: %v", err)
	}
}

func TestSecurityFileErrorsNameTheVariable(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	_ = os.WriteFile(bad, []byte("not pem"), 0o600)
	for _, tc := range []struct {
		sec  ingest.Security
		want string
	}{
		{ingest.Security{Protocol: "ssl", SSLCALocation: filepath.Join(dir, "missing.pem")}, "KAFKA_SSL_CA_LOCATION"},
		{ingest.Security{Protocol: "ssl", SSLCALocation: bad}, "KAFKA_SSL_CA_LOCATION"},
		{ingest.Security{Protocol: "ssl", SSLCertificateLocation: filepath.Join(dir, "c"), SSLKeyLocation: bad}, "KAFKA_SSL_CERTIFICATE_LOCATION"},
		{ingest.Security{Protocol: "ssl", SSLCertificateLocation: bad, SSLKeyLocation: filepath.Join(dir, "k")}, "KAFKA_SSL_KEY_LOCATION"},
		{ingest.Security{Protocol: "sasl_plaintext", SASLMechanism: "GSSAPI"}, "KAFKA_SASL_MECHANISM=GSSAPI"},
	} {
		_, err := ingest.ClientOpts(ingest.Config{Security: tc.sec}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want one naming %s", tc.sec, err, tc.want)
		}
	}
}

func TestSecuritySASLScramSHA256(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sec-topic"),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "bob", "builder"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := ingest.Config{Brokers: c.ListenAddrs(), Security: ingest.Security{
		Protocol: ingest.ProtocolSASLPlaintext, SASLMechanism: ingest.MechanismScramSHA256, SASLUsername: "bob", SASLPassword: "builder",
	}}
	if err := pingWith(t, cfg); err != nil {
		t.Fatalf("SCRAM-SHA-256: %v", err)
	}
	cfg.Security.SASLPassword = "wrong"
	if err := pingWith(t, cfg); err == nil {
		t.Fatal("SCRAM-SHA-256 with a wrong password succeeded")
	}
}

// TestSecurityIngestEndToEnd runs real ingest against a broker requiring
// SASL over mutual TLS: the good record is stored (consumer and admin
// client authenticated) and the garbage record reaches the DLQ topic (the
// DLQ producer authenticated too).
func TestSecurityIngestEndToEnd(t *testing.T) {
	for _, mech := range []string{ingest.MechanismPlain, ingest.MechanismScramSHA256, ingest.MechanismScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			pki := newTestPKI(t, "127.0.0.1")
			c := itCluster(t, 1, kfake.TLS(pki.serverTLS()), kfake.EnableSASL(), kfake.Superuser(mech, "carol", "pw-"+mech))
			cfg := itConfig(c.ListenAddrs())
			cfg.Security = ingest.Security{Protocol: ingest.ProtocolSASLSSL, SSLCALocation: pki.caFile,
				SSLCertificateLocation: pki.clientCert, SSLKeyLocation: pki.clientKey,
				SASLMechanism: mech, SASLUsername: "carol", SASLPassword: "pw-" + mech}
			opts, err := ingest.ClientOpts(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := pingWith(t, ingest.Config{Brokers: c.ListenAddrs()}); err == nil {
				t.Fatal("plaintext succeeded against the secured broker")
			}
			prod, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(itTopic),
				kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()

			st := memory.New(memory.Config{})
			r := startIngest(t, cfg, st)
			waitFor(t, 15*time.Second, "ingest running", func() bool { return r.ing.Status().Running })
			// Produced after startup: new data, so the bad record is DLQ'd.
			itProduce(t, prod, &kgo.Record{Partition: 0, Value: eventPayload("sec-thread", 1)},
				&kgo.Record{Partition: 0, Value: []byte{0x00, 0x0f, 0x01, 0x02}})
			waitNext(t, st, map[int32]int64{0: 2})
			if got := offsetsOf(readPartition(t, st, 0)); len(got) != 1 || got[0] != 0 {
				t.Fatalf("stored offsets %v, want [0]", got)
			}
			dl := readDLQ(t, c.ListenAddrs(), 1, opts...)
			var rec ingest.DLQRecord
			if err := json.Unmarshal(dl[0].Value, &rec); err != nil {
				t.Fatalf("DLQ value: %v", err)
			}
			if rec.KafkaPartition != 0 || rec.KafkaOffset != 1 || rec.ErrorType != ingest.ClassInvalidProtobuf {
				t.Fatalf("DLQ record %+v, want partition 0 offset 1 %s", rec, ingest.ClassInvalidProtobuf)
			}
			if v := metricValue(t, r.reg, "websocket_dlq_sends_total", map[string]string{"error_type": ingest.ClassInvalidProtobuf}); v != 1 {
				t.Errorf("dlq sends{%s} = %v, want 1", ingest.ClassInvalidProtobuf, v)
			}
			r.stop(t)
		})
	}
}

func TestSecurityIgnored(t *testing.T) {
	all := ingest.Security{SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: "p",
		SSLCALocation: "ca", SSLCertificateLocation: "c", SSLKeyLocation: "k", SSLKeyPassword: "kp", SSLEndpointAlgorithm: "none"}
	sasl := []string{"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"}
	ssl := []string{"KAFKA_SSL_CA_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION",
		"KAFKA_SSL_KEY_PASSWORD", "KAFKA_SSL_ENDPOINT_ALGORITHM"}
	for _, tc := range []struct {
		proto string
		want  []string
	}{
		{ingest.ProtocolPlaintext, append(slices.Clone(sasl), ssl...)},
		{ingest.ProtocolSSL, sasl},
		{ingest.ProtocolSASLPlaintext, ssl},
		{ingest.ProtocolSASLSSL, nil},
	} {
		s := all
		s.Protocol = tc.proto
		if got := s.Ignored(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Ignored() = %v, want %v", tc.proto, got, tc.want)
		}
	}
	// Defaults are not "set": a plaintext config from an empty environment
	// ignores nothing.
	c, err := ingest.ConfigFromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Security.Ignored(); len(got) != 0 {
		t.Errorf("defaults: Ignored() = %v", got)
	}
	// A key password without a key is ignored under TLS too.
	s := ingest.Security{Protocol: ingest.ProtocolSSL, SSLCALocation: "ca", SSLKeyPassword: "kp", SSLEndpointAlgorithm: "https"}
	if got := s.Ignored(); !slices.Equal(got, []string{"KAFKA_SSL_KEY_PASSWORD"}) {
		t.Errorf("ssl without a key: Ignored() = %v", got)
	}
}
