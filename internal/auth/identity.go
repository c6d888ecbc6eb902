package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// Authentication methods of an Identity.
const (
	MethodBasic  = "basic"
	MethodBearer = "bearer"
	MethodMTLS   = "mtls"
)

// Identity is who made a request.
type Identity struct {
	// Name is the user name, the token's name or the certificate's name
	// (its entry's name, else its common name).
	Name string
	// Method is MethodBasic, MethodBearer or MethodMTLS.
	Method string
	// Tenant is the tenant the identity is mapped to; empty when none.
	Tenant string
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the authenticated identity of the request whose
// context is ctx; ok is false when the listener does not authenticate.
func IdentityFrom(ctx context.Context) (id Identity, ok bool) {
	id, ok = ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// TenantFrom returns the tenant of the authenticated identity, empty
// when there is none or it has no tenant.
func TenantFrom(ctx context.Context) string {
	id, _ := IdentityFrom(ctx)
	return id.Tenant
}

// File is the identities file (auth.config_file).
type File struct {
	BasicUsers   []BasicUser   `yaml:"basic_users"`
	BearerTokens []BearerToken `yaml:"bearer_tokens"`
	ClientCerts  []ClientCert  `yaml:"client_certs"`
}

// BasicUser is a basic-auth identity; only the bcrypt hash of its password
// is stored (htpasswd -nbBC 10 "" password | cut -d: -f2).
type BasicUser struct {
	Username     string `yaml:"username"`
	PasswordHash string `yaml:"password_hash"`
	Tenant       string `yaml:"tenant"`
}

// BearerToken is a bearer-token identity: the hex SHA-256 of the token
// (sha256sum), or a file holding the token itself (read with the
// identities file).
type BearerToken struct {
	Name        string `yaml:"name"`
	TokenSHA256 string `yaml:"token_sha256"`
	TokenFile   string `yaml:"token_file"`
	Tenant      string `yaml:"tenant"`
}

// ClientCert is an mTLS identity: a verified client certificate whose
// subject common name, or one of whose SANs (DNS name, e-mail address,
// URI or IP), matches.
type ClientCert struct {
	Name       string `yaml:"name"`
	CommonName string `yaml:"common_name"`
	SAN        string `yaml:"san"`
	Tenant     string `yaml:"tenant"`
}

// identities is a loaded File, ready for lookups.
type identities struct {
	users  map[string]BasicUser
	tokens []tokenEntry
	certs  []ClientCert
}

type tokenEntry struct {
	sum    [sha256.Size]byte
	name   string
	tenant string
}

// LoadFile reads and checks an identities file.
func LoadFile(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.compile(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

func (f *File) compile() (*identities, error) {
	ids := &identities{users: map[string]BasicUser{}}
	var errs []error
	for i, u := range f.BasicUsers {
		switch {
		case u.Username == "":
			errs = append(errs, fmt.Errorf("basic_users[%d].username: must not be empty", i))
		case strings.Contains(u.Username, ":"):
			errs = append(errs, fmt.Errorf("basic_users[%d].username: must not contain ':'", i))
		}
		if _, dup := ids.users[u.Username]; dup {
			errs = append(errs, fmt.Errorf("basic_users[%d].username: %q is listed twice", i, u.Username))
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			errs = append(errs, fmt.Errorf("basic_users[%d].password_hash: not a bcrypt hash: %w", i, err))
		}
		ids.users[u.Username] = u
	}
	for i, t := range f.BearerTokens {
		e := tokenEntry{name: t.Name, tenant: t.Tenant}
		switch {
		case (t.TokenSHA256 == "") == (t.TokenFile == ""):
			errs = append(errs, fmt.Errorf("bearer_tokens[%d]: set exactly one of token_sha256 and token_file", i))
			continue
		case t.TokenSHA256 != "":
			b, err := hex.DecodeString(t.TokenSHA256)
			if err != nil || len(b) != sha256.Size {
				errs = append(errs, fmt.Errorf("bearer_tokens[%d].token_sha256: want 64 hex digits", i))
				continue
			}
			copy(e.sum[:], b)
		default:
			raw, err := ReadRegularFile(t.TokenFile, maxSecretFileBytes)
			if err != nil {
				errs = append(errs, fmt.Errorf("bearer_tokens[%d].token_file: %w", i, err))
				continue
			}
			tok := strings.TrimSpace(string(raw))
			if tok == "" {
				errs = append(errs, fmt.Errorf("bearer_tokens[%d].token_file: %s is empty", i, t.TokenFile))
				continue
			}
			e.sum = sha256.Sum256([]byte(tok))
		}
		if e.name == "" {
			e.name = fmt.Sprintf("token-%d", i)
		}
		ids.tokens = append(ids.tokens, e)
	}
	for i, c := range f.ClientCerts {
		if (c.CommonName == "") == (c.SAN == "") {
			errs = append(errs, fmt.Errorf("client_certs[%d]: set exactly one of common_name and san", i))
		}
		ids.certs = append(ids.certs, c)
	}
	return ids, errors.Join(errs...)
}

// dummyHash is compared against when the user is unknown, so that an
// unknown user takes as long as a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("pharos-dummy-password"), bcrypt.DefaultCost)
	return h
})

// bcryptCache remembers successful bcrypt comparisons (by a hash of the
// user, password and stored hash): bcrypt costs tens of milliseconds, too
// much for every request of a client that sends basic auth each time.
type bcryptCache struct {
	mu sync.Mutex
	ok map[[sha256.Size]byte]struct{}
}

const bcryptCacheSize = 1024

func (c *bcryptCache) check(u BasicUser, password string) bool {
	key := sha256.Sum256([]byte(u.Username + "\x00" + password + "\x00" + u.PasswordHash))
	c.mu.Lock()
	_, hit := c.ok[key]
	c.mu.Unlock()
	if hit {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return false
	}
	c.mu.Lock()
	if c.ok == nil || len(c.ok) >= bcryptCacheSize {
		c.ok = map[[sha256.Size]byte]struct{}{}
	}
	c.ok[key] = struct{}{}
	c.mu.Unlock()
	return true
}

func (ids *identities) basic(cache *bcryptCache, user, password string) (Identity, bool) {
	u, known := ids.users[user]
	if !known {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return Identity{}, false
	}
	if !cache.check(u, password) {
		return Identity{}, false
	}
	return Identity{Name: u.Username, Method: MethodBasic, Tenant: u.Tenant}, true
}

// bearer compares the token's hash with every entry in constant time.
func (ids *identities) bearer(token string) (Identity, bool) {
	sum := sha256.Sum256([]byte(token))
	var found *tokenEntry
	for i := range ids.tokens {
		if subtle.ConstantTimeCompare(sum[:], ids.tokens[i].sum[:]) == 1 && found == nil {
			found = &ids.tokens[i]
		}
	}
	if found == nil {
		return Identity{}, false
	}
	return Identity{Name: found.name, Method: MethodBearer, Tenant: found.tenant}, true
}

// cert finds the entry matching a verified client certificate.
func (ids *identities) cert(leaf *x509.Certificate) (Identity, bool) {
	for _, c := range ids.certs {
		if c.CommonName != "" && c.CommonName == leaf.Subject.CommonName || c.SAN != "" && hasSAN(leaf, c.SAN) {
			name := c.Name
			if name == "" {
				name = leaf.Subject.CommonName
			}
			return Identity{Name: name, Method: MethodMTLS, Tenant: c.Tenant}, true
		}
	}
	return Identity{}, false
}

func hasSAN(leaf *x509.Certificate, san string) bool {
	if slices.Contains(leaf.DNSNames, san) || slices.Contains(leaf.EmailAddresses, san) {
		return true
	}
	for _, u := range leaf.URIs {
		if u.String() == san {
			return true
		}
	}
	for _, ip := range leaf.IPAddresses {
		if ip.String() == san {
			return true
		}
	}
	return false
}

// maxSecretFileBytes bounds a token file: a token is a line, not a dump.
const maxSecretFileBytes = 64 << 10

// ReadRegularFile reads a regular file of at most limit bytes; anything
// else (a directory, a device, a FIFO, which would block) is refused
// before it is opened. Errors name the file, never its content: token
// and key files are secrets.
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return raw, nil
}
