// Command tlogcheck checks an Ironroot log's static tiles with Go's golang.org/x/mod/sumdb/tlog
// and sumdb/note, and writes a log in the same layout for Ironroot to check: the Go
// implementation of transparent logs as the judge of Ironroot's C2SP tlog-tiles and checkpoints.
// It is built by tests/log/test_log_go_tlog.py (GOPATH mode, against Debian's
// golang-golang-x-mod-dev) and is not part of Ironroot itself.
//
//	tlogcheck verify DIR ORIGIN VKEY [OLD_CHECKPOINT]
//	    verifies DIR's checkpoint under VKEY (a C2SP/note verifier key), the tree hash from its
//	    tiles, the tree its entry bundles give (its root and every hash tile), inclusion proofs
//	    from the tiles, and, given an older checkpoint of the same log, a consistency proof
//	    from it; prints one JSON object, or an error and exit 1.
//	tlogcheck write DIR ORIGIN SKEY_FILE COUNT [fork INDEX]
//	    writes a log of COUNT entries ("go entry <i>\n") into DIR: hash tiles, entry bundles and a
//	    checkpoint signed with the note key in SKEY_FILE (generated there when absent); prints
//	    the verifier key, size and root as JSON. Running it again with a larger COUNT extends the
//	    same log (full tiles are written again with the same bytes, partial tiles added). With
//	    "fork INDEX", entry INDEX is "go fork <i>\n" instead: another log under the same key.
//	tlogcheck paths
//	    reads lines from stdin and answers each with one line: "parse PATH" (a C2SP tile or
//	    entry-bundle path) with "L N W" as tlog.ParseTilePath reads it (L -1 for an entry
//	    bundle, W 256 for a full tile) or "bad"; "path L N W" with the C2SP path of that tile
//	    as tlog.Tile.Path writes it.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8 // C2SP tlog-tiles: tiles of 256 hashes

// c2spPath maps a tlog tile to its C2SP tlog-tiles path ("tile/<L>/<N>[.p/<W>]", and
// "tile/entries/<N>[.p/<W>]" for the data tiles), which drops the height Go's sumdb puts first.
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", height))
	if t.L == -1 {
		p = "entries/" + strings.TrimPrefix(p, "data/")
	}
	return "tile/" + p
}

// dirTiles reads tiles from a directory; tlog's TileHashReader checks each against the tree
// before it calls SaveTiles, and only tiles saved so are served again from memory.
type dirTiles struct {
	dir      string
	verified map[tlog.Tile][]byte
}

func (d *dirTiles) Height() int { return height }

func (d *dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if data, ok := d.verified[t]; ok {
			out[i] = data
			continue
		}
		data, err := ioutil.ReadFile(filepath.Join(d.dir, c2spPath(t)))
		if err != nil && t.W != 1<<height {
			// C2SP: a partial tile may be gone once the full tile exists; read its prefix
			full := t
			full.W = 1 << height
			data, err = ioutil.ReadFile(filepath.Join(d.dir, c2spPath(full)))
			if err == nil && len(data) >= t.W*tlog.HashSize {
				data = data[:t.W*tlog.HashSize]
			}
		}
		if err != nil {
			return nil, err
		}
		if len(data) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("%s: %d bytes, want %d", c2spPath(t), len(data), t.W*tlog.HashSize)
		}
		out[i] = data
	}
	return out, nil
}

func (d *dirTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	for i, t := range tiles {
		d.verified[t] = data[i]
	}
}

type checkpoint struct {
	origin string
	tree   tlog.Tree
}

func openCheckpoint(msg []byte, origin string, verifier note.Verifier) (checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint note: %w", err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return checkpoint{}, errors.New("checkpoint: fewer than three lines")
	}
	if lines[0] != origin {
		return checkpoint{}, fmt.Errorf("checkpoint: origin %q, want %q", lines[0], origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return checkpoint{}, fmt.Errorf("checkpoint: bad size %q", lines[1])
	}
	hash, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint: bad root hash %q", lines[2])
	}
	return checkpoint{origin, tlog.Tree{N: size, Hash: hash}}, nil
}

// bundleEntries splits a C2SP entry bundle: each entry a big-endian uint16 length and its bytes.
func bundleEntries(data []byte) ([][]byte, error) {
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, errors.New("entry bundle: truncated length")
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, errors.New("entry bundle: truncated entry")
		}
		out = append(out, data[2:2+n])
		data = data[2+n:]
	}
	return out, nil
}

func verify(dir, origin, vkey, old string) (map[string]interface{}, error) {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	msg, err := ioutil.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		return nil, err
	}
	cp, err := openCheckpoint(msg, origin, verifier)
	if err != nil {
		return nil, err
	}
	tree := cp.tree
	hr := tlog.TileHashReader(tree, &dirTiles{dir, map[tlog.Tile][]byte{}})
	root, err := tlog.TreeHash(tree.N, hr)
	if err != nil {
		return nil, fmt.Errorf("tree hash from tiles: %w", err)
	}
	if root != tree.Hash {
		return nil, fmt.Errorf("tree hash from tiles %v, checkpoint says %v", root, tree.Hash)
	}
	// The entries: the tree they give, computed by tlog from the entry bundles alone, must be
	// the checkpoint's, and every hash tile of the checkpoint's size must be the one that
	// tree gives (tlog.NewTiles lists them, tlog.ReadTileData makes them).
	var fromEntries memHashes
	var all [][]byte
	for first := int64(0); first < tree.N; first += 1 << height {
		t := tlog.Tile{H: height, L: -1, N: first >> height, W: 1 << height}
		if tree.N-first < 1<<height {
			t.W = int(tree.N - first)
		}
		data, err := ioutil.ReadFile(filepath.Join(dir, c2spPath(t)))
		if err != nil {
			return nil, err
		}
		entries, err := bundleEntries(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c2spPath(t), err)
		}
		if len(entries) != t.W {
			return nil, fmt.Errorf("%s: %d entries, want %d", c2spPath(t), len(entries), t.W)
		}
		for _, entry := range entries {
			add, err := tlog.StoredHashes(int64(len(all)), entry, &fromEntries)
			if err != nil {
				return nil, err
			}
			fromEntries = append(fromEntries, add...)
			all = append(all, entry)
		}
	}
	if got, err := tlog.TreeHash(tree.N, &fromEntries); err != nil || got != tree.Hash {
		return nil, fmt.Errorf("the entries do not give the checkpoint's root hash")
	}
	// NewTiles lists every width of a partial tile from 1 (x/mod 0.7.0; later versions list
	// the widest only): the tree of this size has the widest
	var tiles []tlog.Tile
	for _, t := range tlog.NewTiles(height, 0, tree.N) {
		if n := len(tiles); n > 0 && tiles[n-1].L == t.L && tiles[n-1].N == t.N {
			tiles = tiles[:n-1]
		}
		tiles = append(tiles, t)
	}
	for _, t := range tiles {
		want, err := tlog.ReadTileData(t, &fromEntries)
		if err != nil {
			return nil, err
		}
		got, err := ioutil.ReadFile(filepath.Join(dir, c2spPath(t)))
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(got, want) {
			return nil, fmt.Errorf("%s: not the tile the entries give", c2spPath(t))
		}
	}
	// Inclusion proofs from the served tiles, checked against the checkpoint's root: every
	// entry of a small log, every 97th and the last of a larger one (each proof re-reads and
	// re-hashes its tiles). x/mod's TileHashReader (0.7.0, and its code at fe2ec04) skips the
	// check of a tile against its parent when the tree hash's subtrees share a tile, so the
	// hashes it returns are not all authenticated; the proofs are, by CheckRecord.
	proved := int64(0)
	for index, entry := range all {
		i := int64(index)
		if tree.N > 1024 && i%97 != 0 && i != tree.N-1 {
			continue
		}
		proof, err := tlog.ProveRecord(tree.N, i, hr)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if err := tlog.CheckRecord(proof, tree.N, tree.Hash, i, tlog.RecordHash(entry)); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		proved++
	}
	checked := int64(len(all))
	report := map[string]interface{}{
		"size": tree.N, "root": tree.Hash.String(), "entries_checked": checked,
		"tiles_checked": len(tiles), "inclusion_proofs": proved,
	}
	if old != "" {
		msg, err := ioutil.ReadFile(old)
		if err != nil {
			return nil, err
		}
		prev, err := openCheckpoint(msg, origin, verifier)
		if err != nil {
			return nil, fmt.Errorf("old %w", err)
		}
		if prev.tree.N > tree.N {
			return nil, fmt.Errorf("old checkpoint size %d > %d", prev.tree.N, tree.N)
		}
		proof, err := tlog.ProveTree(tree.N, prev.tree.N, hr)
		if err != nil {
			return nil, fmt.Errorf("consistency proof: %w", err)
		}
		if err := tlog.CheckTree(proof, tree.N, tree.Hash, prev.tree.N, prev.tree.Hash); err != nil {
			return nil, fmt.Errorf("consistency with the old checkpoint (size %d): %w", prev.tree.N, err)
		}
		report["consistent_from"] = prev.tree.N
	}
	return report, nil
}

// memHashes is the whole tree's stored hashes, in tlog's storage order.
type memHashes []tlog.Hash

func (m *memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*m)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = (*m)[x]
	}
	return out, nil
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := ioutil.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func write(dir, origin, skeyFile string, count, fork int64) (map[string]interface{}, error) {
	skey, err := ioutil.ReadFile(skeyFile)
	if os.IsNotExist(err) {
		var vkey string
		var s string
		s, vkey, err = note.GenerateKey(rand.Reader, origin)
		if err == nil {
			err = ioutil.WriteFile(skeyFile, []byte(s+"\n"+vkey+"\n"), 0o600)
		}
		skey = []byte(s + "\n" + vkey + "\n")
	}
	if err != nil {
		return nil, err
	}
	keys := strings.Fields(string(skey))
	if len(keys) != 2 {
		return nil, errors.New("key file: want a signer key and a verifier key")
	}
	signer, err := note.NewSigner(keys[0])
	if err != nil {
		return nil, err
	}
	var hashes memHashes
	entries := make([][]byte, count)
	for i := int64(0); i < count; i++ {
		entries[i] = []byte(fmt.Sprintf("go entry %d\n", i))
		if i == fork {
			entries[i] = []byte(fmt.Sprintf("go fork %d\n", i))
		}
		add, err := tlog.StoredHashes(i, entries[i], &hashes)
		if err != nil {
			return nil, err
		}
		hashes = append(hashes, add...)
	}
	root, err := tlog.TreeHash(count, &hashes)
	if err != nil {
		return nil, err
	}
	for _, t := range tlog.NewTiles(height, 0, count) {
		data, err := tlog.ReadTileData(t, &hashes)
		if err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(dir, c2spPath(t)), data); err != nil {
			return nil, err
		}
	}
	for first := int64(0); first < count; first += 1 << height {
		t := tlog.Tile{H: height, L: -1, N: first >> height, W: 1 << height}
		if count-first < 1<<height {
			t.W = int(count - first)
		}
		var bundle []byte
		for _, e := range entries[first : first+int64(t.W)] {
			bundle = append(bundle, byte(len(e)>>8), byte(len(e)))
			bundle = append(bundle, e...)
		}
		if err := writeFile(filepath.Join(dir, c2spPath(t)), bundle); err != nil {
			return nil, err
		}
	}
	body := fmt.Sprintf("%s\n%d\n%s\n", origin, count, base64.StdEncoding.EncodeToString(root[:]))
	signed, err := note.Sign(&note.Note{Text: body}, signer)
	if err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, "checkpoint"), signed); err != nil {
		return nil, err
	}
	return map[string]interface{}{"vkey": keys[1], "size": count, "root": root.String()}, nil
}

// goPath maps a C2SP tile path to the sumdb path tlog parses (the height first, "data" for
// the entry bundles); "" when it is no C2SP tile path at all.
func goPath(c2sp string) string {
	if strings.HasPrefix(c2sp, "tile/entries/") {
		return fmt.Sprintf("tile/%d/data/", height) + strings.TrimPrefix(c2sp, "tile/entries/")
	}
	if strings.HasPrefix(c2sp, "tile/data/") { // sumdb's name for entry bundles, not C2SP's
		return ""
	}
	if strings.HasPrefix(c2sp, "tile/") {
		return fmt.Sprintf("tile/%d/", height) + strings.TrimPrefix(c2sp, "tile/")
	}
	return ""
}

func paths() error {
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		f := strings.SplitN(in.Text(), " ", 2)
		switch {
		case len(f) == 2 && f[0] == "parse":
			t, err := tlog.ParseTilePath(goPath(f[1]))
			if err != nil || t.H != height {
				fmt.Fprintln(out, "bad")
			} else {
				fmt.Fprintf(out, "%d %d %d\n", t.L, t.N, t.W)
			}
		case len(f) == 2 && f[0] == "path":
			var t tlog.Tile
			if _, err := fmt.Sscanf(f[1], "%d %d %d", &t.L, &t.N, &t.W); err != nil {
				return err
			}
			t.H = height
			fmt.Fprintln(out, c2spPath(t))
		default:
			return fmt.Errorf("bad request %q", in.Text())
		}
	}
	return in.Err()
}

func main() {
	var report map[string]interface{}
	var err error
	args := os.Args[1:]
	switch {
	case len(args) >= 4 && len(args) <= 5 && args[0] == "verify":
		old := ""
		if len(args) == 5 {
			old = args[4]
		}
		report, err = verify(args[1], args[2], args[3], old)
	case (len(args) == 5 || len(args) == 7 && args[5] == "fork") && args[0] == "write":
		var count int64
		fork := int64(-1)
		count, err = strconv.ParseInt(args[4], 10, 64)
		if err == nil && len(args) == 7 {
			fork, err = strconv.ParseInt(args[6], 10, 64)
		}
		if err == nil {
			report, err = write(args[1], args[2], args[3], count, fork)
		}
	case len(args) == 1 && args[0] == "paths":
		if err := paths(); err != nil {
			fmt.Fprintln(os.Stderr, "tlogcheck:", err)
			os.Exit(1)
		}
		return
	default:
		fmt.Fprintln(os.Stderr, "usage: tlogcheck verify DIR ORIGIN VKEY [OLD_CHECKPOINT] | write DIR ORIGIN SKEY_FILE COUNT [fork INDEX]")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlogcheck:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(report)
	fmt.Println(string(out))
}
