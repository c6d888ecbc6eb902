package tail

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// ErrCorruptPositions is returned when the positions file cannot be read.
// It is written atomically, so this means it was damaged or edited; the
// tailer refuses to start rather than guess (starting over would send
// everything again). Remove the file to read all files from the beginning.
var ErrCorruptPositions = errors.New("tail: corrupt positions file")

const positionsVersion = 1

type positionsDoc struct {
	Version int        `json:"version"`
	Files   []posEntry `json:"files"`
}

// posEntry is the saved state of one file: its identity, and the offset
// before which every line has been acknowledged by the sink.
type posEntry struct {
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	FP     string `json:"fingerprint"`
	FPLen  int    `json:"fingerprint_bytes"`
	Offset int64  `json:"offset"`
	// Size is the largest size seen, so that what a file held past Offset
	// can be reported as lost if it is gone at the next start.
	Size int64 `json:"size"`
	// Source is the path the file's labels come from, when not Path (a
	// file renamed, or read on in a copy, since it was first found).
	Source string `json:"source,omitempty"`
}

func (e posEntry) id() fileID { return fileID{dev: e.Dev, ino: e.Ino} }

func (e posEntry) source() string {
	if e.Source != "" {
		return e.Source
	}
	return e.Path
}

func (e posEntry) fingerprint() uint64 {
	h, _ := strconv.ParseUint(e.FP, 16, 64) // checked by loadPositions
	return h
}

func fpString(h uint64) string { return fmt.Sprintf("%016x", h) }

// loadPositions reads the positions file. exists is false when there is
// none (a first start).
func loadPositions(path string) (entries []posEntry, exists bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read positions: %w", err)
	}
	var doc positionsDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, true, fmt.Errorf("%w %s: %w", ErrCorruptPositions, path, err)
	}
	if doc.Version != positionsVersion {
		return nil, true, fmt.Errorf("%w %s: version %d, want %d", ErrCorruptPositions, path, doc.Version, positionsVersion)
	}
	for i, e := range doc.Files {
		if _, perr := strconv.ParseUint(e.FP, 16, 64); perr != nil || len(e.FP) != 16 ||
			e.FPLen < 0 || e.FPLen > maxFingerprintBytes || e.Offset < 0 || e.Size < 0 || e.Path == "" {
			return nil, true, fmt.Errorf("%w %s: entry %d is invalid", ErrCorruptPositions, path, i)
		}
	}
	return doc.Files, true, nil
}

// savePositions replaces the positions file atomically: a crash leaves
// either the old or the new file, both complete.
func savePositions(path string, entries []posEntry, buf *bytes.Buffer) error {
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetIndent("", " ")
	if err := enc.Encode(positionsDoc{Version: positionsVersion, Files: entries}); err != nil {
		return fmt.Errorf("encode positions: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write positions: %w", err)
	}
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write positions: %w", err)
	}
	// The rename is durable only once the directory is synced.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync positions directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync positions directory: %w", err)
	}
	return nil
}
