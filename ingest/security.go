package ingest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// dialTimeout bounds one broker connection attempt (kgo's default).
const dialTimeout = 10 * time.Second

// ClientOpts returns the kgo options every ingest client shares: seed
// brokers, the dialer (address family and TLS) and SASL, built from cfg
// (after WithDefaults). It reads the CA, certificate and key files, so
// their errors surface here, naming the variable. logger, if not nil,
// receives franz-go's warnings and errors.
func ClientOpts(cfg Config, logger *slog.Logger) ([]kgo.Opt, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sec := cfg.Security
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}

	network := "tcp"
	switch family := sec.AddressFamily; {
	case family == "v4":
		network = "tcp4"
	case family == "v6":
		network = "tcp6"
	case family == "" && anyLoopbackV4(cfg.Brokers):
		network = "tcp4"
	}
	nd := &net.Dialer{Timeout: dialTimeout}
	var tlsCfg *tls.Config
	if sec.UsesTLS() {
		var err error
		if tlsCfg, err = TLSConfig(sec); err != nil {
			return nil, err
		}
	}
	opts = append(opts, kgo.Dialer(func(ctx context.Context, _, host string) (net.Conn, error) {
		if tlsCfg == nil {
			return nd.DialContext(ctx, network, host)
		}
		cfg := tlsCfg.Clone()
		if cfg.ServerName == "" {
			if h, _, err := net.SplitHostPort(host); err == nil {
				cfg.ServerName = h
			}
		}
		td := &tls.Dialer{NetDialer: nd, Config: cfg}
		return td.DialContext(ctx, network, host)
	}))

	if sec.UsesSASL() {
		m, err := saslMechanism(sec)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	if logger != nil {
		opts = append(opts, kgo.WithLogger(kgoLogger{l: logger}))
	}
	return opts, nil
}

// anyLoopbackV4 reports whether a broker host is localhost or an IPv4
// loopback literal (the reference's rule for choosing IPv4).
func anyLoopbackV4(brokers []string) bool {
	for _, b := range brokers {
		h, _, err := net.SplitHostPort(strings.TrimSpace(b))
		if err != nil {
			h = strings.TrimSpace(b)
		}
		if strings.EqualFold(h, "localhost") || strings.HasPrefix(h, "127.") {
			return true
		}
	}
	return false
}

func saslMechanism(sec Security) (sasl.Mechanism, error) {
	switch sec.SASLMechanism {
	case MechanismPlain:
		return plain.Auth{User: sec.SASLUsername, Pass: sec.SASLPassword}.AsMechanism(), nil
	case MechanismScramSHA256:
		return scram.Auth{User: sec.SASLUsername, Pass: sec.SASLPassword}.AsSha256Mechanism(), nil
	case MechanismScramSHA512:
		return scram.Auth{User: sec.SASLUsername, Pass: sec.SASLPassword}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("KAFKA_SASL_MECHANISM=%q: not supported", sec.SASLMechanism)
}

// TLSConfig builds the client TLS configuration of sec: trusted CAs from
// KAFKA_SSL_CA_LOCATION (else the system pool), the client certificate
// from KAFKA_SSL_CERTIFICATE_LOCATION / KAFKA_SSL_KEY_LOCATION (the key
// optionally encrypted with KAFKA_SSL_KEY_PASSWORD, legacy PEM encryption
// only), and host-name verification unless KAFKA_SSL_ENDPOINT_ALGORITHM is
// "none" (the chain is still verified).
func TLSConfig(sec Security) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if sec.SSLCALocation != "" {
		pemBytes, err := os.ReadFile(sec.SSLCALocation)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_SSL_CA_LOCATION=%q: %w", sec.SSLCALocation, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("KAFKA_SSL_CA_LOCATION=%q: no PEM certificate found", sec.SSLCALocation)
		}
		cfg.RootCAs = pool
	}
	if sec.SSLCertificateLocation != "" {
		cert, err := loadKeyPair(sec)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if sec.SSLEndpointAlgorithm == "none" {
		roots := cfg.RootCAs
		cfg.InsecureSkipVerify = true // the chain is verified below, the host name is not
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("broker sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return cfg, nil
}

func loadKeyPair(sec Security) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(sec.SSLCertificateLocation)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("KAFKA_SSL_CERTIFICATE_LOCATION=%q: %w", sec.SSLCertificateLocation, err)
	}
	keyPEM, err := os.ReadFile(sec.SSLKeyLocation)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("KAFKA_SSL_KEY_LOCATION=%q: %w", sec.SSLKeyLocation, err)
	}
	if block, _ := pem.Decode(keyPEM); block != nil {
		switch {
		case block.Type == "ENCRYPTED PRIVATE KEY":
			return tls.Certificate{}, fmt.Errorf("KAFKA_SSL_KEY_LOCATION=%q: encrypted PKCS#8 keys are not supported; decrypt the key or use legacy PEM encryption", sec.SSLKeyLocation)
		case x509.IsEncryptedPEMBlock(block): //nolint:staticcheck // legacy PEM encryption is what librdkafka users have
			if sec.SSLKeyPassword == "" {
				return tls.Certificate{}, fmt.Errorf("KAFKA_SSL_KEY_LOCATION=%q: key is encrypted and KAFKA_SSL_KEY_PASSWORD is not set", sec.SSLKeyLocation)
			}
			der, err := x509.DecryptPEMBlock(block, []byte(sec.SSLKeyPassword)) //nolint:staticcheck // see above
			if err != nil {
				return tls.Certificate{}, fmt.Errorf("KAFKA_SSL_KEY_PASSWORD: cannot decrypt %s: %w", sec.SSLKeyLocation, err)
			}
			keyPEM = pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der})
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("KAFKA_SSL_CERTIFICATE_LOCATION=%q / KAFKA_SSL_KEY_LOCATION=%q: %w",
			sec.SSLCertificateLocation, sec.SSLKeyLocation, err)
	}
	return cert, nil
}

// kgoLogger forwards franz-go's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo:
		lv = slog.LevelInfo
	}
	k.l.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}
