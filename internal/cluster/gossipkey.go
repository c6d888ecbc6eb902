package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	dstls "github.com/grafana/dskit/crypto/tls"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/netutil"
	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pharos-obs/pharos/internal/auth"
)

// How -memberlist.encryption-key-file works. dskit's memberlist transport
// exposes neither memberlist's symmetric key nor client-certificate checks
// on its TLS listener, so the key is turned into TLS both ways:
//
//   - Every member derives the same ed25519 key and self-signed certificate
//     from the shared secret (HKDF-SHA256, bound to the cluster label). The
//     certificate is its own CA: a peer is trusted iff its handshake proves
//     it holds that derived key, i.e. it holds the secret.
//   - dskit's transport dials with that certificate and verifies the
//     member it dials against it (fed from memory through dskit's
//     SecretReader).
//   - dskit itself listens on a loopback port only. The gossip bind address
//     belongs to a gossipGuard, which requires the derived client
//     certificate and splices each accepted connection to dskit's loopback
//     listener. dskit reads a packet's sender from the packet's own header
//     (not from the TCP peer) and memberlist checks peer IPs only with
//     CIDRsAllowed (unset), so the proxy hop changes nothing for gossip.
//
// The loopback listener itself authenticates nobody: a process in the same
// network namespace can still reach it, as it can reach every other
// loopback port of the process.

const (
	// gossipServerName is the DNS SAN of the derived certificate and the
	// name members verify; it does not resolve, IPs are dialled.
	gossipServerName = "pharos-gossip"
	// gossipKDFInfo separates this use of the secret from any other; bump
	// the version to change the derivation (members must then all change).
	gossipKDFInfo = "pharos memberlist gossip identity v1"
	// maxGossipKeyFileSize bounds what is read: a 32-byte key is 45 bytes
	// of base64.
	maxGossipKeyFileSize = 4 << 10

	// Pseudo paths under which the derived PEMs reach dskit's TLS loader.
	gossipSecretCert = "pharos-gossip-key:cert.pem"
	gossipSecretKey  = "pharos-gossip-key:key.pem"
	gossipSecretCA   = "pharos-gossip-key:ca.pem"

	// gossipHandshakeTimeout bounds how long an unauthenticated connection
	// may hold a slot.
	gossipHandshakeTimeout = 5 * time.Second
	// gossipIdleTimeout closes a spliced connection silent this long in one
	// direction; memberlist's own stream and packet timeouts are shorter.
	gossipIdleTimeout = 30 * time.Second
	// gossipDialTimeout bounds the dial of dskit's loopback listener.
	gossipDialTimeout = 2 * time.Second
	// gossipMaxConns bounds concurrent inbound connections (handshaking or
	// spliced); past it, connections wait in the kernel's backlog. dskit
	// opens one connection per packet, each short-lived.
	gossipMaxConns = 512
	// refusalLogInterval rate-limits the warning about refused handshakes;
	// the others are logged at debug level and all are counted.
	refusalLogInterval = time.Minute

	// First byte of a dskit connection (tcp_transport.go, messageType).
	dskitPacket = 1
	// maxGossipPacket bounds a packet the guard reads whole: dskit lets
	// memberlist fill 10 MiB (UDPBufferSize), plus the sender's address
	// and the digest.
	maxGossipPacket = 10<<20 + 512
)

// readGossipKey reads and decodes a key file: base64 (standard, padded, as
// `consul keygen` and `serf keygen` print it) of 16, 24 or 32 bytes.
// Errors name the file but never include its content.
func readGossipKey(path string) ([]byte, error) {
	raw, err := auth.ReadRegularFile(path, maxGossipKeyFileSize)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(raw))
	if text == "" {
		return nil, fmt.Errorf("%s is empty", path)
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		// CorruptInputError carries only an offset, no key material.
		return nil, fmt.Errorf("%s is not base64 (generate one with `head -c32 /dev/urandom | base64`): %w", path, err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	default:
		return nil, fmt.Errorf("%s decodes to %d bytes, want 16, 24 or 32", path, len(key))
	}
}

// gossipIdentity is what every holder of the key derives: one key pair and
// a self-signed certificate that is both the member's certificate and the
// only CA trusted.
type gossipIdentity struct {
	certPEM, keyPEM []byte
	cert            tls.Certificate
	pool            *x509.CertPool
}

// deriveGossipIdentity derives the identity of secret for clusterLabel.
// It is deterministic (ed25519 signatures are, and every certificate field
// is fixed, the key ID included), so members agree byte for byte; the label
// keeps clusters sharing a key apart, as it does for gossip.
func deriveGossipIdentity(secret []byte, clusterLabel string) (*gossipIdentity, error) {
	seed, err := hkdf.Key(sha256.New, secret, nil, gossipKDFInfo+"\x00"+clusterLabel, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("derive gossip key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	keyID := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: gossipServerName},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:              []string{gossipServerName},
		// Set, not left to the library, whose default has changed across
		// Go versions: members built by different ones still agree.
		SubjectKeyId: keyID[:20],
	}
	// ed25519 ignores the random source; the serial is fixed.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("derive gossip certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("derive gossip key: %w", err)
	}
	id := &gossipIdentity{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		pool:    x509.NewCertPool(),
	}
	if id.cert, err = tls.X509KeyPair(id.certPEM, id.keyPEM); err != nil {
		return nil, fmt.Errorf("derive gossip certificate: %w", err)
	}
	id.pool.AppendCertsFromPEM(id.certPEM)
	return id, nil
}

// ReadSecret serves the derived PEMs to dskit's TLS loader under the pseudo
// paths of dskitTLS (dstls.SecretReader), so they never touch the disk.
func (id *gossipIdentity) ReadSecret(path string) ([]byte, error) {
	switch path {
	case gossipSecretCert, gossipSecretCA:
		return id.certPEM, nil
	case gossipSecretKey:
		return id.keyPEM, nil
	default:
		return nil, fmt.Errorf("no gossip secret %q", path)
	}
}

// dskitTLS is dskit's transport TLS: dial with the derived certificate and
// accept only a peer presenting it. dskit's listener serves the same
// certificate but does not check clients; the gossipGuard does.
func (id *gossipIdentity) dskitTLS() dstls.ClientConfig {
	return dstls.ClientConfig{
		CertPath:   gossipSecretCert,
		KeyPath:    gossipSecretKey,
		CAPath:     gossipSecretCA,
		ServerName: gossipServerName,
		MinVersion: "VersionTLS13",
		Reader:     id,
	}
}

// serverTLS is the gossipGuard's listener: a client must prove it holds the
// key. Session tickets are off so every connection is verified, and so a
// dskit sender that writes a packet and closes without reading leaves no
// unread ticket behind (which would turn its close into a reset).
func (id *gossipIdentity) serverTLS() *tls.Config {
	return &tls.Config{
		Certificates:           []tls.Certificate{id.cert},
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              id.pool,
		MinVersion:             tls.VersionTLS13,
		SessionTicketsDisabled: true,
	}
}

// loopbackTLS dials dskit's own listener, which serves the derived
// certificate too.
func (id *gossipIdentity) loopbackTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{id.cert},
		RootCAs:      id.pool,
		ServerName:   gossipServerName,
		MinVersion:   tls.VersionTLS13,
	}
}

// gossipGuard owns the gossip port when a key is set: it accepts only
// members holding the key and splices their connections to dskit's
// loopback listener. listen starts it, close stops it and every connection
// it holds; it is safe for concurrent use.
type gossipGuard struct {
	id       *gossipIdentity
	logger   *slog.Logger
	failures prometheus.Counter
	server   *tls.Config
	loopback *tls.Config

	ln     net.Listener
	addr   string // the configured bind IP with the port bound
	target string // dskit's loopback listener
	slots  chan struct{}
	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	draining atomic.Bool // dskit is stopping: its listener may be gone

	mu         sync.Mutex
	closed     bool
	conns      map[net.Conn]struct{}
	lastWarn   time.Time
	unreported int // refusals logged at debug level since the last warning
}

// newGossipGuard reads the key of cfg and derives the identity; nothing
// listens until listen. It registers its metric on reg.
func newGossipGuard(cfg MemberlistConfig, logger *slog.Logger, reg prometheus.Registerer) (*gossipGuard, error) {
	secret, err := readGossipKey(cfg.EncryptionKeyFile)
	if err != nil {
		return nil, fmt.Errorf("memberlist.encryption_key_file: %w", err)
	}
	id, err := deriveGossipIdentity(secret, cfg.ClusterLabel)
	if err != nil {
		return nil, fmt.Errorf("memberlist.encryption_key_file: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &gossipGuard{
		id:     id,
		logger: logger,
		failures: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "pharos_memberlist_handshake_failures_total",
			Help: "Inbound gossip connections refused because their TLS handshake failed: no certificate derived from -memberlist.encryption-key-file (another key, no TLS, a port scan) or a handshake timeout.",
		}),
		server:   id.serverTLS(),
		loopback: id.loopbackTLS(),
		slots:    make(chan struct{}, gossipMaxConns),
		ctx:      ctx,
		cancel:   cancel,
		conns:    make(map[net.Conn]struct{}),
	}, nil
}

// listen binds the gossip port (cfg.BindAddress), points kc's transport at
// a loopback port with the derived TLS and advertises the gossip port in
// its place, then starts accepting. Call it before dskit's KV is created
// from kc.
func (g *gossipGuard) listen(cfg MemberlistConfig, kc *memberlist.KVConfig, logger log.Logger) error {
	host, port, _ := splitIPPort(cfg.BindAddress, false) // validated
	if host == "" {
		host = "0.0.0.0"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("memberlist.bind_address: %w", err)
	}
	bound := ln.Addr().(*net.TCPAddr).Port
	advHost, advPort, err := advertiseFor(cfg.AdvertiseAddress, host, bound, logger)
	if err == nil {
		port, err = freeLoopbackPort()
	}
	if err != nil {
		_ = ln.Close()
		return err
	}
	g.ln = ln
	g.addr = net.JoinHostPort(host, strconv.Itoa(bound))
	// The port was free a moment ago; dskit binds it when it starts, right
	// after this returns. Another process taking it in between makes the
	// start fail with an address-in-use error. Binding port 0 instead would
	// not do: dskit cannot be handed a listener, and reports the advertised
	// port, not the one it bound.
	g.target = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	kc.TCPTransport.BindAddrs = []string{"127.0.0.1"}
	kc.TCPTransport.BindPort = port
	kc.AdvertiseAddr, kc.AdvertisePort = advHost, advPort
	kc.TCPTransport.TLSEnabled = true
	kc.TCPTransport.TLS = g.id.dskitTLS()

	g.wg.Add(1)
	go g.serve()
	return nil
}

// advertiseFor is the address other members dial: the configured one
// (its port defaulting to the bound one), else the bind IP, else, when
// bound to every interface, the private IP dskit itself would pick.
func advertiseFor(advertise, bindHost string, boundPort int, logger log.Logger) (string, int, error) {
	if advertise != "" {
		host, port, _ := splitIPPort(advertise, true) // validated
		if port < 0 {
			port = boundPort
		}
		return host, port, nil
	}
	ip := net.ParseIP(bindHost)
	if !ip.IsUnspecified() {
		return bindHost, boundPort, nil
	}
	var (
		host string
		err  error
	)
	if ip.To4() != nil {
		host, err = sockaddr.GetPrivateIP()
	} else {
		host, err = netutil.GetFirstAddressOf(nil, logger, true)
	}
	if err == nil && host == "" {
		err = errors.New("no private IP address found")
	}
	if err != nil {
		return "", 0, fmt.Errorf("memberlist.advertise_address: not set, and bound to every interface: %w", err)
	}
	return host, boundPort, nil
}

// freeLoopbackPort returns a loopback port nothing listens on.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("memberlist: pick a loopback port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

// serve accepts connections while slots are free, until close.
func (g *gossipGuard) serve() {
	defer g.wg.Done()
	var delay time.Duration
	for {
		select {
		case g.slots <- struct{}{}:
		case <-g.ctx.Done():
			return
		}
		conn, err := g.ln.Accept()
		if err != nil {
			<-g.slots
			if g.ctx.Err() != nil {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			g.logger.Warn("gossip: accept failed", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-g.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		if !g.track(conn) {
			_ = conn.Close()
			<-g.slots
			return
		}
		g.wg.Add(1) // serve holds a count, so Wait cannot have returned
		go g.handle(conn)
	}
}

// handle authenticates one connection and hands it to dskit: a packet
// (one message, then the sender closes) is read whole first, so dskit
// reads it at once: dskit reads a packet with no deadline, and hands it
// to memberlist through a channel nobody reads once memberlist has
// stopped, leaving the reading goroutine blocked for good if the packet
// completes after that. A stream is spliced both ways.
func (g *gossipGuard) handle(raw net.Conn) {
	defer g.wg.Done()
	defer func() { <-g.slots }()
	defer g.untrack(raw)

	_ = raw.SetDeadline(time.Now().Add(gossipHandshakeTimeout))
	front := tls.Server(raw, g.server)
	if err := front.HandshakeContext(g.ctx); err != nil {
		if g.ctx.Err() == nil {
			g.refused(raw.RemoteAddr(), err)
		}
		return
	}
	// The first byte and a whole packet must arrive within this.
	_ = raw.SetDeadline(time.Now().Add(gossipIdleTimeout))
	head := make([]byte, 1, 512)
	if _, err := io.ReadFull(front, head); err != nil {
		g.dropped(raw.RemoteAddr(), err)
		return
	}
	if head[0] == dskitPacket {
		rest, err := io.ReadAll(io.LimitReader(front, maxGossipPacket+1))
		if err == nil && len(rest) > maxGossipPacket {
			err = fmt.Errorf("packet larger than %d bytes", maxGossipPacket)
		}
		if err != nil {
			g.dropped(raw.RemoteAddr(), err)
			return
		}
		head = append(head, rest...)
	}

	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: gossipDialTimeout}, Config: g.loopback}
	c, err := d.DialContext(g.ctx, "tcp", g.target)
	if err != nil {
		if g.ctx.Err() == nil {
			level := slog.LevelWarn
			if g.draining.Load() {
				level = slog.LevelDebug // dskit has stopped listening
			}
			g.logger.Log(g.ctx, level, "gossip: cannot reach the local memberlist listener", "target", g.target, "err", err)
		}
		return
	}
	back := c.(*tls.Conn)
	if !g.track(back.NetConn()) {
		_ = back.Close()
		return
	}
	defer g.untrack(back.NetConn())
	_ = back.SetDeadline(time.Now().Add(gossipIdleTimeout))
	if _, err := back.Write(head); err != nil {
		g.dropped(raw.RemoteAddr(), err)
		return
	}
	if head[0] == dskitPacket {
		// Wait for dskit to close: closing first, with its session ticket
		// unread, would reset the connection under the packet.
		if err = back.CloseWrite(); err == nil {
			_, err = io.Copy(io.Discard, back)
		}
		if err != nil {
			g.dropped(raw.RemoteAddr(), err)
		}
		return
	}
	_ = raw.SetDeadline(time.Time{})
	splice(front, back)
}

// dropped logs, at debug level, an authenticated connection that failed
// before reaching dskit: a member timing out or going away.
func (g *gossipGuard) dropped(remote net.Addr, err error) {
	if g.ctx.Err() == nil {
		g.logger.Debug("gossip: connection dropped before reaching memberlist", "remote", remote.String(), "err", err)
	}
}

// splice copies both ways until each side has finished sending, or until
// either fails or idles. An end of stream is passed on as a TLS close
// (dskit reads a packet to its end).
func splice(a, b *tls.Conn) {
	abort := func() {
		_ = a.NetConn().Close()
		_ = b.NetConn().Close()
	}
	errc := make(chan error, 1)
	go func() { errc <- pipe(b, a) }()
	if err := pipe(a, b); err != nil {
		abort()
	}
	if err := <-errc; err != nil {
		abort()
	}
}

// pipe copies src to dst; a read or write idle for gossipIdleTimeout fails.
func pipe(dst, src *tls.Conn) error {
	buf := make([]byte, 16<<10) // one TLS record
	for {
		_ = src.SetReadDeadline(time.Now().Add(gossipIdleTimeout))
		n, err := src.Read(buf)
		if n > 0 {
			_ = dst.SetWriteDeadline(time.Now().Add(gossipIdleTimeout))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return dst.CloseWrite()
		}
		if err != nil {
			return err
		}
	}
}

// refused counts a failed handshake and logs it: a warning at most every
// refusalLogInterval, the rest at debug level, so a scan cannot flood the
// log.
func (g *gossipGuard) refused(remote net.Addr, err error) {
	g.failures.Inc()
	now := time.Now()
	g.mu.Lock()
	warn := g.lastWarn.IsZero() || now.Sub(g.lastWarn) >= refusalLogInterval
	unreported := g.unreported
	if warn {
		g.lastWarn, g.unreported = now, 0
	} else {
		g.unreported++
	}
	g.mu.Unlock()
	if warn {
		g.logger.Warn("gossip: refused a connection without the gossip key's certificate (see pharos_memberlist_handshake_failures_total)",
			"remote", remote.String(), "err", err, "refused_unlogged_since_last", unreported)
		return
	}
	g.logger.Debug("gossip: refused a connection without the gossip key's certificate", "remote", remote.String(), "err", err)
}

// track registers a connection to close on close; false once closed.
func (g *gossipGuard) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.conns[c] = struct{}{}
	return true
}

// untrack closes a connection and forgets it.
func (g *gossipGuard) untrack(c net.Conn) {
	_ = c.Close()
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// drain tells the guard that dskit is stopping, so its listener may be
// gone: members still dialling get hung up on without a warning.
func (g *gossipGuard) drain() { g.draining.Store(true) }

// close stops accepting, closes every connection and waits for the
// goroutines. It is idempotent.
func (g *gossipGuard) close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	conns := make([]net.Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()

	g.cancel()
	if g.ln != nil {
		_ = g.ln.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	g.wg.Wait()
}
