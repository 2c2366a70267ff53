package tlspsk

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
	"io"
)

// Cipher suites (RFC 4279, RFC 5487). RC4 and 3DES variants of RFC 4279 are
// not implemented: they are broken, and the OpenSSL build used as the
// independent test peer does not offer them either.
const (
	TLS_PSK_WITH_AES_128_CBC_SHA    uint16 = 0x008c
	TLS_PSK_WITH_AES_256_CBC_SHA    uint16 = 0x008d
	TLS_PSK_WITH_AES_128_GCM_SHA256 uint16 = 0x00a8
	TLS_PSK_WITH_AES_256_GCM_SHA384 uint16 = 0x00a9
	TLS_PSK_WITH_AES_128_CBC_SHA256 uint16 = 0x00ae
	TLS_PSK_WITH_AES_256_CBC_SHA384 uint16 = 0x00af
)

type suite struct {
	id      uint16
	name    string
	keyLen  int
	macLen  int              // 0 for AEAD
	mac     func() hash.Hash // record MAC (CBC suites)
	aead    bool             // AES-GCM, TLS 1.2 only
	prfHash func() hash.Hash // TLS 1.2 PRF and Finished hash
}

// suites lists every implemented suite in amtd's default preference order.
func suites() []*suite {
	return []*suite{
		{id: TLS_PSK_WITH_AES_128_GCM_SHA256, name: "TLS_PSK_WITH_AES_128_GCM_SHA256", keyLen: 16, aead: true, prfHash: sha256.New},
		{id: TLS_PSK_WITH_AES_256_GCM_SHA384, name: "TLS_PSK_WITH_AES_256_GCM_SHA384", keyLen: 32, aead: true, prfHash: sha512.New384},
		{id: TLS_PSK_WITH_AES_128_CBC_SHA256, name: "TLS_PSK_WITH_AES_128_CBC_SHA256", keyLen: 16, macLen: 32, mac: sha256.New, prfHash: sha256.New},
		{id: TLS_PSK_WITH_AES_256_CBC_SHA384, name: "TLS_PSK_WITH_AES_256_CBC_SHA384", keyLen: 32, macLen: 48, mac: sha512.New384, prfHash: sha512.New384},
		{id: TLS_PSK_WITH_AES_128_CBC_SHA, name: "TLS_PSK_WITH_AES_128_CBC_SHA", keyLen: 16, macLen: 20, mac: sha1.New, prfHash: sha256.New},
		{id: TLS_PSK_WITH_AES_256_CBC_SHA, name: "TLS_PSK_WITH_AES_256_CBC_SHA", keyLen: 32, macLen: 20, mac: sha1.New, prfHash: sha256.New},
	}
}

func suiteByID(id uint16) *suite {
	for _, s := range suites() {
		if s.id == id {
			return s
		}
	}
	return nil
}

// usableWith reports whether s may be negotiated at version v: AES-GCM needs
// TLS 1.2 (RFC 5487 §3); the CBC suites work with every version (with the
// version's own PRF before 1.2).
func (s *suite) usableWith(v uint16) bool { return !s.aead || v >= VersionTLS12 }

// CipherSuiteName returns the IANA name of an implemented suite, or a hex
// form.
func CipherSuiteName(id uint16) string {
	if s := suiteByID(id); s != nil {
		return s.name
	}
	return "0x" + hexU16(id)
}

// CipherSuites returns the implemented suites in default preference order.
func CipherSuites() []uint16 {
	var ids []uint16
	for _, s := range suites() {
		ids = append(ids, s.id)
	}
	return ids
}

func hexU16(v uint16) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[v>>12], digits[v>>8&15], digits[v>>4&15], digits[v&15]})
}

// errBadRecordMAC is returned by open for every decryption failure: bad
// length, bad padding or bad MAC are indistinguishable to the peer.
var errBadRecordMAC = errors.New("bad record MAC")

// protection encrypts and authenticates records in one direction.
type protection interface {
	seal(seq uint64, hdr []byte, plaintext []byte, rnd io.Reader) ([]byte, error)
	open(seq uint64, hdr []byte, ciphertext []byte) ([]byte, error)
}

// macHeader is seq_num || type || version || length (RFC 5246 §6.2.3.1).
func macHeader(seq uint64, hdr []byte, length int) []byte {
	var b [13]byte
	binary.BigEndian.PutUint64(b[:], seq)
	b[8], b[9], b[10] = hdr[0], hdr[1], hdr[2]
	binary.BigEndian.PutUint16(b[11:], uint16(length))
	return b[:]
}

// cbcProtection is MAC-then-encrypt with AES-CBC. TLS 1.0 chains the IV from
// the last ciphertext block of the previous record; TLS 1.1+ sends a fresh
// random IV in front of every record.
type cbcProtection struct {
	block      cipher.Block
	mac        hash.Hash
	dummy      hash.Hash // absorbs extra blocks to even out MAC timing
	macLen     int
	explicitIV bool
	iv         []byte // TLS 1.0 chained IV
}

func newCBC(s *suite, key, macKey, iv []byte, version uint16) (*cbcProtection, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return &cbcProtection{
		block: b, mac: hmac.New(s.mac, macKey), dummy: hmac.New(s.mac, macKey), macLen: s.macLen,
		explicitIV: version >= VersionTLS11, iv: append([]byte(nil), iv...),
	}, nil
}

func (c *cbcProtection) seal(seq uint64, hdr []byte, plaintext []byte, rnd io.Reader) ([]byte, error) {
	bs := c.block.BlockSize()
	c.mac.Reset()
	c.mac.Write(macHeader(seq, hdr, len(plaintext)))
	c.mac.Write(plaintext)
	data := append(append([]byte(nil), plaintext...), c.mac.Sum(nil)...)
	pad := bs - (len(data)+1)%bs
	if pad == bs {
		pad = 0
	}
	for range pad + 1 {
		data = append(data, byte(pad))
	}
	var iv, out []byte
	if c.explicitIV {
		out = make([]byte, bs+len(data))
		iv = out[:bs]
		if _, err := io.ReadFull(rnd, iv); err != nil {
			return nil, err
		}
		cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(out[bs:], data)
	} else {
		out = make([]byte, len(data))
		cipher.NewCBCEncrypter(c.block, c.iv).CryptBlocks(out, data)
		c.iv = append(c.iv[:0], out[len(out)-bs:]...)
	}
	return out, nil
}

func (c *cbcProtection) open(seq uint64, hdr []byte, ct []byte) ([]byte, error) {
	bs := c.block.BlockSize()
	iv := c.iv
	if c.explicitIV {
		if len(ct) < bs {
			return nil, errBadRecordMAC
		}
		iv, ct = ct[:bs], ct[bs:]
	}
	// At least MAC + one padding byte, rounded up to whole blocks.
	if len(ct) == 0 || len(ct)%bs != 0 || len(ct) < c.macLen+1 {
		return nil, errBadRecordMAC
	}
	nextIV := append([]byte(nil), ct[len(ct)-bs:]...)
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(c.block, iv).CryptBlocks(pt, ct)
	if !c.explicitIV {
		c.iv = nextIV
	}

	// Constant-time padding check (no branch on secret data): every one of
	// the last padLen+1 bytes must equal padLen, and padLen+1+macLen must
	// fit. On failure padLen is taken as 0 so that the MAC is still computed
	// over almost the same amount of data.
	n := len(pt)
	padLen := int(pt[n-1])
	good := subtle.ConstantTimeLessOrEq(padLen+1+c.macLen, n)
	toCheck := min(256, n)
	for i := 0; i < toCheck; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, padLen) // i <= padLen
		same := subtle.ConstantTimeByteEq(pt[n-1-i], byte(padLen))
		good &= ^inPad | same // bytes inside the padding must equal padLen
		good &= 1
	}
	padLen = subtle.ConstantTimeSelect(good, padLen, 0)
	dataLen := n - padLen - 1 - c.macLen
	if dataLen < 0 { // only possible when good == 0 and n < macLen+1, excluded above
		return nil, errBadRecordMAC
	}
	c.mac.Reset()
	c.mac.Write(macHeader(seq, hdr, dataLen))
	c.mac.Write(pt[:dataLen])
	sum := c.mac.Sum(nil)
	// Hash the bytes the real MAC skipped so the number of compression
	// function calls depends little on padLen (Lucky Thirteen mitigation,
	// partial like most implementations).
	c.dummy.Reset()
	c.dummy.Write(pt[dataLen : dataLen+padLen+1])
	c.dummy.Sum(nil)
	macOK := subtle.ConstantTimeCompare(sum, pt[dataLen:dataLen+c.macLen])
	if good&macOK != 1 {
		return nil, errBadRecordMAC
	}
	return pt[:dataLen], nil
}

// gcmProtection is AES-GCM with a 4-byte salt from the key block and an
// 8-byte explicit nonce (RFC 5288); the explicit part is the sequence number.
type gcmProtection struct {
	aead cipher.AEAD
	salt []byte
}

func newGCM(key, salt []byte) (*gcmProtection, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &gcmProtection{aead: a, salt: append([]byte(nil), salt...)}, nil
}

func (g *gcmProtection) seal(seq uint64, hdr []byte, plaintext []byte, _ io.Reader) ([]byte, error) {
	nonce := make([]byte, 12)
	copy(nonce, g.salt)
	binary.BigEndian.PutUint64(nonce[4:], seq)
	out := append([]byte(nil), nonce[4:]...)
	return g.aead.Seal(out, nonce, plaintext, macHeader(seq, hdr, len(plaintext))), nil
}

func (g *gcmProtection) open(seq uint64, hdr []byte, ct []byte) ([]byte, error) {
	if len(ct) < 8+g.aead.Overhead() {
		return nil, errBadRecordMAC
	}
	nonce := make([]byte, 12)
	copy(nonce, g.salt)
	copy(nonce[4:], ct[:8])
	ad := macHeader(seq, hdr, len(ct)-8-g.aead.Overhead())
	pt, err := g.aead.Open(nil, nonce, ct[8:], ad)
	if err != nil {
		return nil, errBadRecordMAC
	}
	return pt, nil
}

// newProtection builds the record protection for one direction.
func newProtection(version uint16, s *suite, key, macKey, iv []byte) (protection, error) {
	if s.aead {
		return newGCM(key, iv)
	}
	return newCBC(s, key, macKey, iv, version)
}
