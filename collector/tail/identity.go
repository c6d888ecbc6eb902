package tail

import (
	"errors"
	"io"
)

// fileID is where a file lives: device and inode. An inode number is
// reused once its file is deleted and closed, so the identity of a file
// is fileID plus the fingerprint of its head.
type fileID struct {
	dev, ino uint64
}

// FNV-1a, 64 bit: its state is the hash so far, so a fingerprint grows
// with the file without re-reading what it has hashed.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func fnvAdd(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// hashPrefix returns the fingerprint of the first n bytes of r. ok is false
// when r is shorter than n.
func hashPrefix(r io.ReaderAt, n int, buf []byte) (h uint64, ok bool, err error) {
	h = fnvOffset
	var off int64
	for n > 0 {
		chunk := buf[:min(n, len(buf))]
		k, err := r.ReadAt(chunk, off)
		h = fnvAdd(h, chunk[:k])
		n -= k
		off += int64(k)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return h, n == 0, nil
			}
			return h, false, err
		}
	}
	return h, true, nil
}
