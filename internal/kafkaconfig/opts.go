package kafkaconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cdcrelay/cdcrelay/config"
)

// Opts returns the client options for cfg: the connection options, and the
// compression of produced batches (kafka.compression; empty means
// config.DefaultCompression), which a client that only reads ignores.
func Opts(cfg *config.Kafka, log *slog.Logger) ([]kgo.Opt, error) {
	codec, err := Compression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DialTimeout(10 * time.Second),
		kgo.RequestTimeoutOverhead(10 * time.Second),
		kgo.RetryTimeout(30 * time.Second),
		kgo.ProducerBatchCompression(codec),
	}
	if !cfg.ClientMetrics {
		// A broker that subscribes clients to KIP-714 metrics gets them
		// lz4-compressed, and franz-go's lz4 writer keeps two 4 MiB
		// buffers per client for it.
		opts = append(opts, kgo.DisableClientMetrics())
	}
	if log != nil {
		opts = append(opts, kgo.WithLogger(kgoLogger{log}))
	}
	if cfg.TLS.Enabled || cfg.TLS.CAFile != "" || cfg.TLS.CertFile != "" {
		tc, err := TLSConfig(&cfg.TLS, "kafka.tls")
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := mechanism(&cfg.SASL); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// Compression returns the codec that kafka.compression names: none, gzip,
// snappy, lz4 or zstd; empty is config.DefaultCompression. Each codec is
// franz-go's at its default level. A batch that does not shrink is sent
// uncompressed by franz-go whatever the codec.
func Compression(name string) (kgo.CompressionCodec, error) {
	if name == "" {
		name = config.DefaultCompression
	}
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("kafka.compression: %q is not supported; one of %s", name, strings.Join(config.Compressions, ", "))
}

func mechanism(s *config.SASL) sasl.Mechanism {
	user, pass := s.Username, s.Password
	switch s.Mechanism {
	case "PLAIN":
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			return plain.Auth{User: user, Pass: pass.Reveal()}, nil
		})
	case "SCRAM-SHA-256":
		return scram.Sha256(func(context.Context) (scram.Auth, error) {
			return scram.Auth{User: user, Pass: pass.Reveal()}, nil
		})
	case "SCRAM-SHA-512":
		return scram.Sha512(func(context.Context) (scram.Auth, error) {
			return scram.Auth{User: user, Pass: pass.Reveal()}, nil
		})
	}
	return nil
}

// TLSConfig builds a client TLS config from t; key names the config section
// for error messages.
func TLSConfig(t *config.TLS, key string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", key, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file: %s holds no PEM certificate", key, t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file/key_file: %w", key, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		l.log.Error("kafka: "+msg, keyvals...)
	case kgo.LogLevelWarn:
		l.log.Warn("kafka: "+msg, keyvals...)
	default:
		l.log.Debug("kafka: "+msg, keyvals...)
	}
}
