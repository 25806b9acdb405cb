package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are PEM files of a throwaway CA, a server certificate it signed
// for 127.0.0.1, ::1 and localhost, and a client certificate it signed (for
// mutual TLS). The files are readable by the servers' user.
type TLSFiles struct {
	Dir                           string
	CAFile                        string
	CertFile, KeyFile             string // server
	ClientCertFile, ClientKeyFile string // client, common name "cdcrelay-test"

	ca         *x509.CertPool
	clientCert tls.Certificate
}

// NewTLSFiles creates a CA, a server and a client certificate, valid for a
// day, in a directory removed when the test ends.
func NewTLSFiles(t testing.TB) *TLSFiles {
	t.Helper()
	dir, err := serverDir(t, "tls", true)
	check(t, err)
	f := &TLSFiles{
		Dir:            dir,
		CAFile:         filepath.Join(dir, "ca.pem"),
		CertFile:       filepath.Join(dir, "server.pem"),
		KeyFile:        filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
	}
	fail := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("testenv: tls: %s: %v", what, err)
		}
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fail("CA key", err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cdcrelay test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	fail("CA certificate", err)
	caCert, err := x509.ParseCertificate(caDER)
	fail("CA certificate", err)
	fail("write CA", writePEM(f.CAFile, "CERTIFICATE", caDER))

	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		fail(cn+" key", err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		fail(cn+" certificate", err)
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		fail(cn+" key", err)
		fail("write "+cn, writePEM(certFile, "CERTIFICATE", der))
		fail("write "+cn+" key", writePEM(keyFile, "PRIVATE KEY", keyDER))
	}
	leaf(2, "localhost", x509.ExtKeyUsageServerAuth, f.CertFile, f.KeyFile)
	leaf(3, "cdcrelay-test", x509.ExtKeyUsageClientAuth, f.ClientCertFile, f.ClientKeyFile)

	f.ca = x509.NewCertPool()
	f.ca.AddCert(caCert)
	f.clientCert, err = tls.LoadX509KeyPair(f.ClientCertFile, f.ClientKeyFile)
	fail("load client certificate", err)
	return f
}

// ClientConfig trusts the CA only. With clientCert set it also presents the
// client certificate.
func (f *TLSFiles) ClientConfig(clientCert bool) *tls.Config {
	c := &tls.Config{RootCAs: f.ca, MinVersion: tls.VersionTLS12}
	if clientCert {
		c.Certificates = []tls.Certificate{f.clientCert}
	}
	return c
}

func writePEM(path, typ string, der []byte) error {
	return writeOwned(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644, true)
}
