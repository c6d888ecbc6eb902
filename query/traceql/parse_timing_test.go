package traceql

import "testing"

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, query string }{
		{"all", `{}`},
		{"grafana", `{resource.service.name="frontend" && name="GET /api" && duration>100ms && status=error}`},
		{"union", `{ span.http.method = "GET" && span.http.status_code >= 500 } || { resource.service.name =~ "api|web" && kind = server }`},
		{"product", `{ (.a = 1 || .b = 2) && (.c = 3 || .d = 4) && (.e = 5 || .f = 6) }`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.query)))
			for b.Loop() {
				if _, err := Parse(bc.query); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
