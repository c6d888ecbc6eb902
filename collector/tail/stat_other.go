//go:build !unix

package tail

import (
	"hash/fnv"
	"os"
)

// idOf has no inode to go by here: the name stands in for it, so a rename
// looks like a deletion and a new file. Pharos agents run on Linux; this
// keeps the package building elsewhere.
func idOf(fi os.FileInfo) fileID {
	h := fnv.New64a()
	h.Write([]byte(fi.Name()))
	return fileID{ino: h.Sum64()}
}
