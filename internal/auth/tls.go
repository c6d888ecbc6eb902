package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// checkInterval is how often, at most, the files behind a reloading value
// are stat'ed for changes.
const checkInterval = time.Second

// fileStamp identifies a version of a file.
type fileStamp struct {
	mtime time.Time
	size  int64
}

// reloading holds a value built from files and rebuilds it when one of
// them changes (mtime or size), checking at most once per checkInterval.
// A rebuild that fails (a half-written file during rotation) keeps the
// previous value.
type reloading[T any] struct {
	files []string
	build func() (T, error)
	now   func() time.Time

	mu      sync.Mutex
	checked time.Time
	stamps  []fileStamp
	value   T
	loaded  bool
}

func newReloading[T any](build func() (T, error), files ...string) (*reloading[T], error) {
	r := &reloading[T]{files: files, build: build, now: time.Now}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *reloading[T]) stat() []fileStamp {
	out := make([]fileStamp, len(r.files))
	for i, f := range r.files {
		if fi, err := os.Stat(f); err == nil {
			out[i] = fileStamp{fi.ModTime(), fi.Size()}
		}
	}
	return out
}

func (r *reloading[T]) get() (T, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.loaded && now.Sub(r.checked) < checkInterval {
		return r.value, nil
	}
	r.checked = now
	stamps := r.stat()
	if r.loaded && equalStamps(stamps, r.stamps) {
		return r.value, nil
	}
	v, err := r.build()
	if err != nil {
		if r.loaded {
			return r.value, nil
		}
		return v, err
	}
	r.value, r.stamps, r.loaded = v, stamps, true
	return v, nil
}

func equalStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].mtime.Equal(b[i].mtime) || a[i].size != b[i].size {
			return false
		}
	}
	return true
}

// LoadCAPool reads a PEM CA bundle; it fails when the file holds no
// certificate, so that a wrong path or format is caught at start rather
// than as failed handshakes.
func LoadCAPool(path string) (*x509.CertPool, error) { return loadCAPool(path) }

func loadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

// ServerTLS returns the TLS configuration of a listener, or nil when TLS
// is off. nextProtos are its ALPN protocols ("h2" for gRPC; "h2" and
// "http/1.1" for HTTP). The certificate, key and client CA are re-read
// when their files change: every handshake gets the current ones.
func ServerTLS(c TLSConfig, nextProtos ...string) (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if c.KeyFile == "" {
		return nil, errors.New("tls: key_file is required with cert_file")
	}
	minVersion := tls.VersionTLS12
	if v, ok := tlsVersions[c.MinVersion]; ok {
		minVersion = int(v)
	}
	files := []string{c.CertFile, c.KeyFile}
	if c.ClientCAFile != "" {
		files = append(files, c.ClientCAFile)
	}
	build := func() (*tls.Config, error) {
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{
			Certificates: []tls.Certificate{pair},
			ClientAuth:   c.clientAuth(),
			MinVersion:   uint16(minVersion),
			NextProtos:   nextProtos,
		}
		if c.ClientCAFile != "" {
			if cfg.ClientCAs, err = loadCAPool(c.ClientCAFile); err != nil {
				return nil, err
			}
		}
		return cfg, nil
	}
	r, err := newReloading(build, files...)
	if err != nil {
		return nil, err
	}
	current := func() *tls.Config {
		cfg, _ := r.get() // never fails once loaded
		return cfg
	}
	base := current().Clone()
	// The handshake uses the configuration GetConfigForClient returns;
	// GetCertificate is set too because servers check that the base has a
	// certificate source.
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return current(), nil }
	base.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return &current().Certificates[0], nil
	}
	base.Certificates = nil
	return base, nil
}
