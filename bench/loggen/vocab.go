package main

import (
	"math/rand/v2"
	"strconv"
)

// vocab is what every file draws its low-cardinality values from. It is
// built once from the seed, so that all files (and every run with the same
// seed) share it.
type vocab struct {
	services  []string
	pods      [][]string // by service
	paths     []string   // '#' is replaced by a numeric id per line
	queries   []string   // query strings appended to some GET paths
	callers   []string
	loggers   []string // JSON lines: Java-style logger names
	ips       []string // client addresses of the access lines
	agents    []string
	referers  []string
	upstreams []string
	tables    []string
	queues    []string
	topics    []string
	errs      []string
}

// Sizes: a few hundred paths, a few thousand client addresses, tens of
// everything else, as a mid-sized shop's logs would have.
const (
	nPaths = 320
	nIPs   = 3000
)

var (
	serviceNames = []string{
		"checkout", "payments", "cart", "catalog", "inventory", "auth", "users", "search",
		"recommendations", "shipping", "notifications", "orders", "pricing", "reviews", "gateway",
		"billing", "fraud", "media", "sessions", "ledger", "email", "analytics", "promotions", "loyalty",
	}
	resources = []string{
		"orders", "users", "carts", "products", "payments", "invoices", "shipments", "reviews", "sessions",
		"addresses", "coupons", "categories", "inventory", "prices", "refunds", "subscriptions", "notifications",
		"wishlists", "accounts", "tokens", "webhooks", "reports", "exports", "images", "stores", "warehouses",
		"returns", "ratings", "vendors", "carriers", "tickets", "messages", "devices", "plans", "quotes",
	}
	subResources = []string{"items", "status", "history", "events", "lines", "attachments", "comments", "labels", "settings", "members"}
	staticPaths  = []string{
		"/healthz", "/readyz", "/metrics", "/favicon.ico", "/robots.txt", "/", "/login", "/logout", "/cart",
		"/checkout", "/account", "/search", "/sitemap.xml", "/manifest.json", "/graphql",
	}
	assetDirs  = []string{"js", "css", "img", "fonts"}
	assetNames = []string{"app", "vendor", "runtime", "main", "checkout", "product", "logo", "hero", "icons", "inter-var"}
	assetExts  = map[string]string{"js": ".js", "css": ".css", "img": ".webp", "fonts": ".woff2"}
	queryStrs  = []string{
		"?page=2", "?page=3&limit=50", "?limit=100", "?sort=created_at&order=desc", "?q=shoes", "?q=winter+jacket&size=m",
		"?include=items", "?expand=customer,items", "?status=pending", "?from=2026-11-01&to=2026-11-27", "?currency=EUR",
		"?lang=de", "?utm_source=newsletter&utm_medium=email", "?ref=homepage", "?category=electronics&page=4",
	}
	callerFiles = []string{
		"server/http.go", "server/grpc.go", "handler/orders.go", "handler/users.go", "handler/cart.go", "store/postgres.go",
		"store/redis.go", "client/payments.go", "client/inventory.go", "worker/consumer.go", "worker/retry.go",
		"auth/jwt.go", "middleware/logging.go", "middleware/ratelimit.go", "cache/lru.go", "queue/kafka.go",
		"search/query.go", "email/smtp.go", "billing/invoice.go", "main.go",
	}
	loggerNames = []string{
		"com.acme.orders.OrderService", "com.acme.orders.OrderController", "com.acme.payments.PaymentService",
		"com.acme.payments.gateway.StripeClient", "com.acme.cart.CartRepository", "com.acme.users.UserService",
		"com.acme.auth.TokenFilter", "com.acme.inventory.StockReservation", "com.acme.shipping.RateCalculator",
		"com.acme.common.http.RequestLogger", "org.hibernate.SQL", "org.springframework.web.servlet.DispatcherServlet",
		"com.zaxxer.hikari.pool.HikariPool", "org.apache.kafka.clients.consumer.KafkaConsumer",
		"com.acme.notifications.EmailSender", "com.acme.search.IndexUpdater", "io.lettuce.core.RedisClient",
		"com.acme.billing.InvoiceGenerator", "com.acme.fraud.RiskScorer", "com.acme.catalog.ProductCache",
	}
	userAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		"Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		"curl/8.5.0", "Go-http-client/2.0", "okhttp/4.12.0", "python-requests/2.32.3", "kube-probe/1.31",
		"Prometheus/2.55.1", "axios/1.7.7", "Apache-HttpClient/5.3.1 (Java/21.0.5)", "ELB-HealthChecker/2.0",
		"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "facebookexternalhit/1.1",
		"Mozilla/5.0 (Linux; Android 14; moto g54 5G) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Mobile Safari/537.36",
	}
	refererList = []string{
		"-", "-", "-", "https://shop.example.com/", "https://shop.example.com/cart", "https://shop.example.com/checkout",
		"https://www.google.com/", "https://shop.example.com/search?q=shoes", "https://shop.example.com/account/orders",
		"https://l.facebook.com/", "https://shop.example.com/product/48213", "android-app://com.google.android.gm/",
	}
	upstreamList = []string{
		"payments-svc:8080", "inventory-svc:8080", "users-svc:9090", "pricing-svc:8080", "redis-master:6379",
		"postgres-orders:5432", "search-es:9200", "kafka-0.kafka:9092", "smtp-relay:587", "stripe-api:443",
	}
	tableList = []string{"orders", "order_items", "users", "carts", "cart_items", "payments", "shipments", "products", "inventory", "sessions", "audit_log", "coupons"}
	queueList = []string{"emails", "invoices", "webhooks", "search-index", "thumbnails", "exports", "refunds", "notifications"}
	topicList = []string{"orders.v1", "payments.v1", "inventory.events", "users.changes", "clickstream", "audit"}
	errList   = []string{
		"context deadline exceeded", "connection reset by peer", "EOF", "i/o timeout",
		`pq: duplicate key value violates unique constraint \"orders_pkey\"`, "redis: connection pool timeout",
		"rpc error: code = Unavailable desc = connection refused", "card_declined: insufficient_funds",
		"token is expired", "too many requests", "no such host", "unexpected status 502 Bad Gateway",
		"json: cannot unmarshal string into Go struct field Order.total of type int64", "lock wait timeout exceeded",
	}
)

const podChars = "bcdfghjklmnpqrstvwxz2456789"

func newVocab(seed uint64) *vocab {
	r := rand.New(rand.NewPCG(seed, 0x70686172))
	v := &vocab{
		services: serviceNames, queries: queryStrs, loggers: loggerNames, agents: userAgents,
		referers: refererList, upstreams: upstreamList, tables: tableList, queues: queueList,
		topics: topicList, errs: errList,
	}
	for _, s := range serviceNames {
		rs := randChars(r, 10)
		n := 2 + r.IntN(5)
		pods := make([]string, n)
		for i := range pods {
			pods[i] = s + "-" + rs + "-" + randChars(r, 5)
		}
		v.pods = append(v.pods, pods)
	}
	for _, f := range callerFiles {
		for range 3 {
			v.callers = append(v.callers, f+":"+strconv.Itoa(20+r.IntN(600)))
		}
	}
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			v.paths = append(v.paths, p)
		}
	}
	for _, p := range staticPaths {
		add(p)
	}
	for _, d := range assetDirs {
		for _, n := range assetNames[:6] {
			add("/static/" + d + "/" + n + "." + randHex(r, 8) + assetExts[d])
		}
	}
	for len(v.paths) < nPaths {
		ver := "/api/v" + strconv.Itoa(1+r.IntN(2)) + "/"
		res := resources[r.IntN(len(resources))]
		switch r.IntN(3) {
		case 0:
			add(ver + res)
		case 1:
			add(ver + res + "/#")
		default:
			add(ver + res + "/#/" + subResources[r.IntN(len(subResources))])
		}
	}
	for range nIPs {
		var ip []byte
		switch r.IntN(4) {
		case 0:
			ip = append(ip, "10."...)
			ip = strconv.AppendInt(ip, int64(r.IntN(256)), 10)
		default: // public-looking clients
			ip = strconv.AppendInt(ip, int64(1+r.IntN(223)), 10)
			ip = append(ip, '.')
			ip = strconv.AppendInt(ip, int64(r.IntN(256)), 10)
		}
		for range 2 {
			ip = append(ip, '.')
			ip = strconv.AppendInt(ip, int64(r.IntN(256)), 10)
		}
		v.ips = append(v.ips, string(ip))
	}
	return v
}

func randChars(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = podChars[r.IntN(len(podChars))]
	}
	return string(b)
}

func randHex(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = hexDigits[r.IntN(16)]
	}
	return string(b)
}

const hexDigits = "0123456789abcdef"
