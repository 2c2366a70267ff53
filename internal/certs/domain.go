package certs

import "strings"

// DomainMatches is the AMT domain rule amtd applies between a provisioning
// leaf certificate's CN and a device's DNS suffix (spec/legacy.md §10 item 4,
// the rule amtd's simulator enforces):
//
//   - both are compared case-insensitively, surrounding spaces and trailing
//     dots removed; a leading "*." on the CN is removed;
//   - they match when the CN equals the suffix or ends with "." + suffix
//     (a whole-label boundary, so "evilvprodemo.com" does not match
//     "vprodemo.com");
//   - an empty CN or suffix never matches.
//
// Examples: CN "intel.vprodemo.com" matches the suffixes "vprodemo.com" and
// "intel.vprodemo.com", not "lab.vprodemo.com" nor "demo.com". The rule has
// no notion of public suffixes: "com" matches every CN under .com (how real
// firmware treats such short suffixes is unverified).
//
// Where RPS differs (RPSDomainMatches): RPS compares only the last two labels
// of the CN with the last two labels of the suffix, case-sensitively. So RPS
// accepts CN "intel.vprodemo.com" for suffix "lab.vprodemo.com" or
// "other.vprodemo.com" (AMT devices with those suffixes would refuse it by
// this rule), accepts CN "a.example.co.uk" for "b.other.co.uk" (only "co.uk"
// is compared), and rejects "Intel.VProDemo.com" for "vprodemo.com" (case).
// Whether real firmware requires the whole suffix or only trailing labels is
// unverified (legacy.md §10); amtd reports a CN that passes RPS's rule but
// not this one as a warning, not an error.
func DomainMatches(leafCN, deviceSuffix string) bool {
	cn := normalizeDNS(leafCN)
	cn = strings.TrimPrefix(cn, "*.")
	suffix := strings.TrimPrefix(normalizeDNS(deviceSuffix), ".")
	if cn == "" || suffix == "" {
		return false
	}
	return cn == suffix || strings.HasSuffix(cn, "."+suffix)
}

// RPSDomainMatches is RPS's domain check for a provisioning certificate
// (admin-api.md §4 check 2): the last two dot-separated labels of the leaf
// CN equal the last two labels of the domain suffix. amtd compares them
// case-insensitively and ignores a trailing dot (RPS does neither); a name
// with a single label is compared whole.
func RPSDomainMatches(leafCN, domainSuffix string) bool {
	return lastTwoLabels(normalizeDNS(leafCN)) == lastTwoLabels(normalizeDNS(domainSuffix))
}

func lastTwoLabels(name string) string {
	labels := strings.Split(name, ".")
	if len(labels) > 2 {
		labels = labels[len(labels)-2:]
	}
	return strings.TrimSpace(strings.Join(labels, "."))
}

func normalizeDNS(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}
