package spool

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The crash test re-runs this binary as the process it kills.
	if dir := os.Getenv("SPOOL_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

func smallConfig() Config {
	return Config{MaxBytes: 64 << 10, SegmentBytes: 8 << 10}
}

type fixture struct {
	t       *testing.T
	cfg     Config
	dir     string
	reg     *prometheus.Registry
	dropped struct{ records, samples int }
}

func newFixture(t *testing.T, cfg Config) *fixture {
	return &fixture{t: t, cfg: cfg, dir: t.TempDir()}
}

// open opens the fixture's spool with a fresh registry; it is closed at
// cleanup if the test has not closed it.
func (f *fixture) open() *Spool {
	f.t.Helper()
	f.reg = prometheus.NewRegistry()
	s, err := Open(f.cfg, f.dir, func(records, samples int) {
		f.dropped.records += records
		f.dropped.samples += samples
	}, slog.New(slog.DiscardHandler), f.reg)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = s.Close() })
	return s
}

func (f *fixture) counter(name string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	require.NoError(f.t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	f.t.Fatalf("metric %s not found", name)
	return 0
}

func (f *fixture) segments() []string {
	f.t.Helper()
	m, err := filepath.Glob(filepath.Join(f.dir, "*"+segmentSuffix))
	require.NoError(f.t, err)
	slices.Sort(m)
	return m
}

// payload is record i: its number, padded to n bytes.
func payload(i, n int) []byte {
	b := []byte(fmt.Sprintf("record-%06d:", i))
	for len(b) < n {
		b = append(b, byte('a'+i%26))
	}
	return b
}

func recordNumber(t *testing.T, data []byte) int {
	t.Helper()
	s, _, ok := strings.Cut(strings.TrimPrefix(string(data), "record-"), ":")
	require.True(t, ok, "record %q", data)
	i, err := strconv.Atoi(s)
	require.NoError(t, err)
	return i
}

// readAll reads every readable record and returns their numbers.
func readAll(t *testing.T, s *Spool) ([]int, []Record) {
	t.Helper()
	var nums []int
	var recs []Record
	for {
		rec, err := s.Read(nil)
		if errors.Is(err, ErrEmpty) {
			return nums, recs
		}
		require.NoError(t, err)
		nums = append(nums, recordNumber(t, rec.Data))
		recs = append(recs, rec)
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, func() error { c := DefaultConfig(); return c.Validate() }())
	c := DefaultConfig()
	require.Equal(t, int64(1<<30), c.MaxBytes)
	require.Equal(t, int64(16<<20), c.SegmentBytes)

	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{MaxBytes: 0, SegmentBytes: 1 << 20}, "agent.spool.max_bytes: must be positive"},
		{Config{MaxBytes: 1 << 20, SegmentBytes: 1 << 20}, "agent.spool.max_bytes: must be at least twice agent.spool.segment_bytes"},
		{Config{MaxBytes: 1 << 30, SegmentBytes: 100}, "agent.spool.segment_bytes: must be between"},
		{Config{MaxBytes: 1 << 40, SegmentBytes: 2 << 30}, "agent.spool.segment_bytes: must be between"},
	} {
		require.ErrorContains(t, tc.cfg.Validate(), tc.want)
	}
	// Both fields reported at once.
	err := (&Config{MaxBytes: -1, SegmentBytes: 1}).Validate()
	require.ErrorContains(t, err, "agent.spool.max_bytes")
	require.ErrorContains(t, err, "agent.spool.segment_bytes")

	fs := flag.NewFlagSet("", flag.ContinueOnError)
	var fc Config
	fc.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-agent.spool.max-bytes=1048576", "-agent.spool.segment-bytes=65536"}))
	require.Equal(t, Config{MaxBytes: 1 << 20, SegmentBytes: 64 << 10}, fc)
}

func TestAppendReadConfirmInOrder(t *testing.T) {
	f := newFixture(t, smallConfig())
	s := f.open()
	_, err := s.Read(nil)
	require.ErrorIs(t, err, ErrEmpty)

	for i := 1; i <= 30; i++ {
		require.NoError(t, s.Append(payload(i, 700), i))
	}
	require.Equal(t, 30, s.Len())
	require.Greater(t, len(f.segments()), 1, "records span several segments")
	require.Equal(t, 30.0, f.counter("pharos_agent_spool_appended_records_total"))
	require.Equal(t, 30.0, f.counter("pharos_agent_spool_records"))

	// Read ahead ten, confirm five: Rewind goes back to the sixth.
	var buf []byte
	var read []Record
	for range 10 {
		rec, err := s.Read(buf[:0])
		require.NoError(t, err)
		buf = rec.Data
		read = append(read, Record{Seq: rec.Seq, Samples: rec.Samples})
		require.Equal(t, len(read), recordNumber(t, rec.Data))
		require.Equal(t, len(read), rec.Samples)
	}
	for i := 1; i < len(read); i++ {
		require.Equal(t, read[i-1].Seq+1, read[i].Seq)
	}
	require.NoError(t, s.Confirm(read[4].Seq))
	require.Equal(t, 25, s.Len())
	require.Equal(t, 5.0, f.counter("pharos_agent_spool_replayed_records_total"))
	s.Rewind()
	nums, recs := readAll(t, s)
	require.Equal(t, seq(6, 30), nums)

	// Confirming what was not read is a caller bug, reported.
	require.Error(t, s.Confirm(recs[len(recs)-1].Seq+1))
	require.NoError(t, s.Confirm(recs[len(recs)-1].Seq))
	require.Zero(t, s.Len())
	// Every sealed segment is gone; the active one stays until the next write.
	require.Len(t, f.segments(), 1)

	require.LessOrEqual(t, s.Bytes(), f.cfg.SegmentBytes)
	require.NoError(t, s.Append(payload(31, 10), 1))
	nums, _ = readAll(t, s)
	require.Equal(t, []int{31}, nums)
}

func TestGroupCommit(t *testing.T) {
	f := newFixture(t, smallConfig())
	s := f.open()
	for i := 1; i <= 3; i++ {
		require.NoError(t, s.Write(payload(i, 100), 1))
	}
	// Written but not synced: not readable yet.
	_, err := s.Read(nil)
	require.ErrorIs(t, err, ErrEmpty)
	require.Zero(t, s.Len())
	select {
	case <-s.Notify():
		t.Fatal("notified before sync")
	default:
	}
	require.NoError(t, s.Sync())
	select {
	case <-s.Notify():
	default:
		t.Fatal("no notification after sync")
	}
	require.Equal(t, 3, s.Len())

	// Close syncs what is written.
	require.NoError(t, s.Write(payload(4, 100), 1))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice")
	require.ErrorIs(t, s.Append(nil, 0), ErrClosed)
	_, err = s.Read(nil)
	require.ErrorIs(t, err, ErrClosed)

	s = f.open()
	nums, _ := readAll(t, s)
	require.Equal(t, seq(1, 4), nums)
}

func TestRestartReplaysUnconfirmedOnly(t *testing.T) {
	f := newFixture(t, smallConfig())
	s := f.open()
	for i := 1; i <= 20; i++ {
		require.NoError(t, s.Append(payload(i, 900), 2))
	}
	// 12 read, 8 of them confirmed: 9..12 were read but not confirmed and
	// must come back (at-least-once); 1..8 must not.
	var recs []Record
	for range 12 {
		rec, err := s.Read(nil)
		require.NoError(t, err)
		recs = append(recs, rec)
	}
	require.NoError(t, s.Confirm(recs[7].Seq))
	require.NoError(t, s.Close())

	s = f.open()
	require.Equal(t, 12, s.Len())
	require.Equal(t, 12.0, f.counter("pharos_agent_spool_records"))
	got, _ := readAll(t, s)
	require.Equal(t, seq(9, 20), got)

	// New records continue the sequence after the old ones.
	require.NoError(t, s.Append(payload(21, 10), 1))
	rec, err := s.Read(nil)
	require.NoError(t, err)
	require.Equal(t, 21, recordNumber(t, rec.Data))
	require.NoError(t, s.Confirm(rec.Seq))
	require.NoError(t, s.Close())

	// Everything confirmed: the next open finds no records and deletes the
	// old segments, and sequence numbers still never go back.
	s = f.open()
	require.Zero(t, s.Len())
	require.Empty(t, f.segments())
	require.NoError(t, s.Append(payload(22, 10), 1))
	rec2, err := s.Read(nil)
	require.NoError(t, err)
	require.Greater(t, rec2.Seq, rec.Seq)
}

func TestTornTailIsTruncated(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail func(frame []byte) []byte
	}{
		{"half a frame", func(fr []byte) []byte { return fr[:len(fr)/2] }},
		{"header only", func(fr []byte) []byte { return fr[:frameExtra-3] }},
		{"whole frame with a bad crc", func(fr []byte) []byte { fr[len(fr)-1] ^= 0xff; return fr }},
		{"garbage", func([]byte) []byte { return []byte("\x00\x00\x00garbage after a crash") }},
		{"zeros", func([]byte) []byte { return make([]byte, 4096) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, smallConfig())
			s := f.open()
			for i := 1; i <= 3; i++ {
				require.NoError(t, s.Append(payload(i, 200), 1))
			}
			require.NoError(t, s.Close())
			segs := f.segments()
			require.Len(t, segs, 1)
			st, err := os.Stat(segs[0])
			require.NoError(t, err)
			tail := tc.tail(appendFrame(nil, 4, 1, payload(4, 200)))
			appendToFile(t, segs[0], tail)

			s = f.open()
			require.Equal(t, float64(len(tail)), f.counter("pharos_agent_spool_corrupt_bytes_total"))
			st2, err := os.Stat(segs[0])
			require.NoError(t, err)
			require.Equal(t, st.Size(), st2.Size(), "torn tail truncated")
			require.Equal(t, 3, s.Len())
			// Appends go on after the valid records.
			require.NoError(t, s.Append(payload(4, 200), 1))
			nums, _ := readAll(t, s)
			require.Equal(t, seq(1, 4), nums)
		})
	}
}

func TestDamageInTheMiddleIsSkippedAndCounted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte) // b is the frame of record 3
	}{
		{"payload bit flip", func(b []byte) { b[len(b)-5] ^= 0x10 }},
		{"length field", func(b []byte) { b[5] ^= 0x7f }},
		{"magic", func(b []byte) { b[0] = 'X' }},
		{"sequence number", func(b []byte) { b[headerSize] ^= 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, smallConfig())
			s := f.open()
			for i := 1; i <= 5; i++ {
				require.NoError(t, s.Append(payload(i, 300), 10))
			}
			require.NoError(t, s.Close())
			frameSize := int64(frameExtra + 300)
			damageFile(t, f.segments()[0], 2*frameSize, frameSize, tc.damage)

			s = f.open()
			require.Equal(t, float64(frameSize), f.counter("pharos_agent_spool_corrupt_bytes_total"))
			require.Equal(t, 4, s.Len())
			nums, _ := readAll(t, s)
			require.Equal(t, []int{1, 2, 4, 5}, nums)
		})
	}
}

// Damage that appears after Open (the disk, or another program) is found by
// the CRC check on read.
func TestDamageFoundWhileReading(t *testing.T) {
	f := newFixture(t, smallConfig())
	s := f.open()
	for i := 1; i <= 4; i++ {
		require.NoError(t, s.Append(payload(i, 300), 10))
	}
	frameSize := int64(frameExtra + 300)
	damageFile(t, f.segments()[0], frameSize, frameSize, func(b []byte) { b[frameExtra+7] ^= 1 })
	nums, recs := readAll(t, s)
	require.Equal(t, []int{1, 3, 4}, nums)
	require.Equal(t, float64(frameSize), f.counter("pharos_agent_spool_corrupt_bytes_total"))
	require.NoError(t, s.Confirm(recs[len(recs)-1].Seq))
	require.Zero(t, s.Len(), "the lost record is not counted as waiting")
}

func TestBoundDropsOldestSegmentsAndReportsThem(t *testing.T) {
	cfg := Config{MaxBytes: 32 << 10, SegmentBytes: 8 << 10}
	f := newFixture(t, cfg)
	s := f.open()
	const n, size = 200, 1000
	total := 0
	for i := 1; i <= n; i++ {
		require.NoError(t, s.Append(payload(i, size), i))
		total += i
		require.LessOrEqual(t, s.Bytes(), cfg.MaxBytes)
	}
	require.Positive(t, f.dropped.records)
	nums, recs := readAll(t, s)
	// What is left is the newest records, contiguous, in order.
	require.Equal(t, seq(n-len(nums)+1, n), nums)
	require.Equal(t, n, len(nums)+f.dropped.records)
	kept := 0
	for _, r := range recs {
		kept += r.Samples
	}
	require.Equal(t, total, kept+f.dropped.samples, "every sample is either kept or reported dropped")
	require.Equal(t, float64(s.Bytes()), f.counter("pharos_agent_spool_bytes"))
}

// Records the reader holds unconfirmed may be dropped by the bound under
// it; confirming them afterwards is harmless, and reading goes on with the
// oldest record left.
func TestBoundDropsUnderAReader(t *testing.T) {
	cfg := Config{MaxBytes: 32 << 10, SegmentBytes: 8 << 10}
	f := newFixture(t, cfg)
	s := f.open()
	require.NoError(t, s.Append(payload(1, 1000), 1))
	first, err := s.Read(nil)
	require.NoError(t, err)
	for i := 2; i <= 100; i++ {
		require.NoError(t, s.Append(payload(i, 1000), 1))
	}
	require.Positive(t, f.dropped.records)
	require.NoError(t, s.Confirm(first.Seq))
	nums, _ := readAll(t, s)
	require.Equal(t, 100, nums[len(nums)-1])
	require.Equal(t, 100, len(nums)+f.dropped.records)
	require.Equal(t, seq(nums[0], 100), nums)
}

func TestRecordTooLarge(t *testing.T) {
	f := newFixture(t, smallConfig())
	s := f.open()
	require.ErrorIs(t, s.Append(make([]byte, 40<<10), 1), ErrTooLarge)
	// MaxRecordBytes is the exact bound.
	cfg := smallConfig()
	require.ErrorIs(t, s.Append(make([]byte, cfg.MaxRecordBytes()+1), 1), ErrTooLarge)
	require.NoError(t, s.Append(payload(0, int(cfg.MaxRecordBytes())), 1))
	// A record bigger than a segment (but within the bound) gets a
	// segment of its own.
	require.NoError(t, s.Append(payload(1, 20<<10), 1))
	require.NoError(t, s.Append(payload(2, 100), 1))
	nums, _ := readAll(t, s)
	require.Equal(t, []int{0, 1, 2}, nums)
}

func TestDirectoryIsLocked(t *testing.T) {
	f := newFixture(t, smallConfig())
	s := f.open()
	_, err := Open(f.cfg, f.dir, nil, nil, nil)
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, s.Close())
	s2, err := Open(f.cfg, f.dir, nil, nil, nil)
	require.NoError(t, err)
	require.NoError(t, s2.Close())
}

// Two spools on one registry need a distinguishing label: without one,
// Open fails cleanly rather than panicking.
func TestMetricsRegistrationConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	withSignal := func(s string) prometheus.Registerer {
		return prometheus.WrapRegistererWith(prometheus.Labels{"signal": s}, reg)
	}
	s1, err := Open(smallConfig(), t.TempDir(), nil, nil, withSignal("metrics"))
	require.NoError(t, err)
	defer s1.Close()
	_, err = Open(smallConfig(), t.TempDir(), nil, nil, withSignal("metrics"))
	require.ErrorContains(t, err, "register metrics")
	s2, err := Open(smallConfig(), t.TempDir(), nil, nil, withSignal("logs"))
	require.NoError(t, err)
	require.NoError(t, s2.Close())
}

func TestBadCursorReplaysEverything(t *testing.T) {
	f := newFixture(t, smallConfig())
	s := f.open()
	for i := 1; i <= 3; i++ {
		require.NoError(t, s.Append(payload(i, 10), 1))
	}
	rec, err := s.Read(nil)
	require.NoError(t, err)
	require.NoError(t, s.Confirm(rec.Seq))
	require.NoError(t, s.Close())
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, cursorName), []byte("junk"), 0o644))
	s = f.open()
	nums, _ := readAll(t, s)
	require.Equal(t, seq(1, 3), nums, "duplicates rather than losses")
}

// Reading into one buffer again and again gives each record its own bytes,
// whatever the sizes before it.
func TestReadReusesBuffer(t *testing.T) {
	f := newFixture(t, smallConfig())
	s := f.open()
	sizes := []int{500, 20, 3000, 20, 1500}
	for i, n := range sizes {
		require.NoError(t, s.Append(payload(i, n), i))
	}
	buf := make([]byte, 0, 64)
	for i, n := range sizes {
		rec, err := s.Read(buf[:0])
		require.NoError(t, err)
		require.Equal(t, payload(i, n), rec.Data)
		buf = rec.Data
	}
	s.Rewind()
	for i, n := range sizes {
		rec, err := s.Read(buf[:0])
		require.NoError(t, err)
		require.Equal(t, payload(i, n), rec.Data, "second pass")
		buf = rec.Data
	}
}

// A reader and a writer at once, as the publisher runs them.
func TestConcurrentWriterAndReader(t *testing.T) {
	f := newFixture(t, Config{MaxBytes: 1 << 20, SegmentBytes: 16 << 10})
	s := f.open()
	const n = 2000
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			if err := s.Write(payload(i, 100+i%300), 1); err != nil {
				done <- err
				return
			}
			if i%7 == 0 || i == n {
				if err := s.Sync(); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	next := 1
	var buf []byte
	deadline := time.Now().Add(30 * time.Second)
	for next <= n {
		rec, err := s.Read(buf[:0])
		if errors.Is(err, ErrEmpty) {
			require.True(t, time.Now().Before(deadline), "reader stalled at %d", next)
			select {
			case <-s.Notify():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		require.NoError(t, err)
		buf = rec.Data
		require.Equal(t, next, recordNumber(t, rec.Data))
		if next%5 == 0 {
			require.NoError(t, s.Confirm(rec.Seq))
		}
		next++
	}
	require.NoError(t, <-done)
	require.Equal(t, 0.0, f.counter("pharos_agent_spool_corrupt_bytes_total"))
	require.Zero(t, f.dropped.records)
}

// kill -9 while appending: every record whose Append returned is there
// after a restart, in order, and the torn tail of the one being written
// does no harm.
func TestSurvivesKill9(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPOOL_CRASH_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	acked := 0
	sc := bufio.NewScanner(out)
	for acked < 300 && sc.Scan() {
		acked, err = strconv.Atoi(sc.Text())
		require.NoError(t, err)
	}
	require.NoError(t, cmd.Process.Kill()) // SIGKILL
	for sc.Scan() {
		// Appends acknowledged before the kill landed.
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			acked = n
		}
	}
	_ = cmd.Wait()
	require.GreaterOrEqual(t, acked, 300)

	f := &fixture{t: t, cfg: crashConfig(), dir: dir}
	s := f.open()
	nums, _ := readAll(t, s)
	require.GreaterOrEqual(t, len(nums), acked)
	require.Equal(t, seq(1, len(nums)), nums)
}

func crashConfig() Config { return Config{MaxBytes: 1 << 30, SegmentBytes: 64 << 10} }

// crashChild appends records forever, printing the number of each one
// once Append has returned, until it is killed.
func crashChild(dir string) {
	s, err := Open(crashConfig(), dir, nil, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 1; ; i++ {
		if err := s.Append(payload(i, 1000+i%5000), 1); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(i)
	}
}

func appendToFile(t *testing.T, path string, b []byte) {
	t.Helper()
	fl, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = fl.Write(b)
	require.NoError(t, err)
	require.NoError(t, fl.Close())
}

// damageFile lets fn change n bytes of path at off.
func damageFile(t *testing.T, path string, off, n int64, fn func([]byte)) {
	t.Helper()
	fl, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer fl.Close()
	b := make([]byte, n)
	_, err = fl.ReadAt(b, off)
	require.NoError(t, err)
	fn(b)
	_, err = fl.WriteAt(b, off)
	require.NoError(t, err)
}

func TestCursorEncoding(t *testing.T) {
	for _, v := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
		got, err := decodeCursor(encodeCursor(nil, v))
		require.NoError(t, err)
		require.Equal(t, v, got)
	}
	b := encodeCursor(nil, 7)
	b[0] ^= 1
	_, err := decodeCursor(b)
	require.ErrorIs(t, err, errBadCursor)
	_, err = decodeCursor(b[:5])
	require.ErrorIs(t, err, errBadCursor)
}

func TestStats(t *testing.T) {
	f := newFixture(t, smallConfig())
	s := f.open()
	require.Equal(t, Stats{LimitBytes: 64 << 10}, s.Stats())

	rec := make([]byte, 3<<10)
	for range 5 { // two records to an 8 KiB segment
		require.NoError(t, s.Append(rec, 1))
	}
	st := s.Stats()
	require.Equal(t, 5, st.Records)
	require.Equal(t, s.Bytes(), st.Bytes)
	require.Greater(t, st.Bytes, int64(15<<10))
	require.Equal(t, len(f.segments()), st.Segments)
	require.Equal(t, 3, st.Segments)
	require.Equal(t, int64(64<<10), st.LimitBytes)
}
