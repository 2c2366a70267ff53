// Code generated from /work/shared/spec/legacy.md §12; DO NOT EDIT by hand without checking the spec.

package amthashes

var defaults = []Entry{
	{Index: 1, Name: "Go Daddy Class 2 Certification Authority", SHA256: "c3846bf24b9e93ca64274c0ec67c1ecc5e024ffcacd2d74019350e81fe546ae4", SHA1: "2796bae63f1801e277261ba0d77770028f20eee4", Verified: true, Active: true},
	{Index: 2, Name: "Go Daddy Root Certificate Authority - G2", SHA256: "45140b3247eb9cc8c5b4f0d7b53091f73292089e6e5a63e2749dd3aca9198eda", SHA1: "47beabc922eae80e78783462a79f45c254fde68b", Verified: true, Active: true},
	{Index: 3, Name: "Comodo AAA Certificate Services", SHA256: "d7a7a0fb5d7e2731d771e9484ebcdef71d5f0c3e0a2948782bc83ee0ea699ef4", SHA1: "d1eb23a46d17d68fd92564c2f1f1601764d8e349", Verified: true, Active: true},
	{Index: 4, Name: "Starfield Class 2 Certification Authority", SHA256: "1465fa205397b876faa6f0a9958e5590e40fcc7faa4fb7c2c8677521fb5fb658", SHA1: "ad7e1c28b064ef8f6003402014c3d0e3370eb58a", Verified: true, Active: true},
	{Index: 5, Name: "Starfield Root Certificate Authority - G2", SHA256: "2ce1cb0bf9d2f9e102993fbe215152c3b2dd0cabde1c68e5319b839154dbb7f5", SHA1: "b51c067cee2b0c3df855ab2d92f4fe39d4e70f0e", Verified: true, Active: true},
	{Index: 6, Name: "VeriSign Class 3 Public Primary Certification Authority - G5", SHA256: "9acfab7e43c8d880d06b262a94deeee4b4659989c3d0caf19baf6405e41ab7df", SHA1: "4eb6d578499b1ccf5f581ead56be3d9b6744a5e5", Verified: true, Active: true},
	{Index: 7, Name: "Baltimore CyberTrust Root (expired 2025-05-12)", SHA256: "16af57a9f676b0ab126095aa5ebadef22ab31119d644ac95cd4b93dbf3f26aeb", SHA1: "d4de20d05e66fc53fe1a50882c78db2852cae474", Verified: true, Active: true},
	{Index: 8, Name: "Cybertrust Global Root (expired 2021-12-15)", SHA256: "960adf0063e96356750c2965dd0a0867da0b9cbd6e77714aeafb2349ab393da3", SHA1: "5f43e5b1bff8788cac1cc7ca4a9ac6222bcc34c6", Verified: true, Active: true},
	{Index: 9, Name: "Verizon Global Root CA", SHA256: "68ad50909b04363c605ef13581a939ff2c96372e3f12325b0a6861e1d59f6603", SHA1: "", Verified: false, Active: true},
	{Index: 10, Name: "Entrust.net Certification Authority (2048)", SHA256: "6dc47172e01cbcb0bf62580d895fe2b8ac9ad4f873801e0c10b9c837d21eb177", SHA1: "503006091d97d4f5ae39f7cbe7927d7d652d3431", Verified: true, Active: true},
	{Index: 11, Name: "Entrust Root Certification Authority", SHA256: "73c176434f1bc6d5adf45b0e76e727287c8de57616c1e6e6141a2b2cbc7d8e4c", SHA1: "b31eb1b740e36c8402dadc37d44df5d4674952f9", Verified: true, Active: true},
	{Index: 12, Name: "Entrust Root Certification Authority - G2", SHA256: "43df5774b03e7fef5fe40d931a7bedf1bb2e6b42738c4e6d3841103d3aa7f339", SHA1: "8cf427fd790c3ad166068de81e57efbb932272d4", Verified: true, Active: true},
	{Index: 13, Name: "VeriSign Universal Root Certification Authority", SHA256: "2399561127a57125de8cefea610ddf2fa078b5c8067f4e828290bfb860e84b3c", SHA1: "3679ca35668772304d30a5fb873b0fa77bb70d54", Verified: true, Active: true},
	{Index: 14, Name: "AffirmTrust Premium", SHA256: "70a73f7f376b60074248904534b11482d5bf0e698ecc498df52577ebf2e93b9a", SHA1: "d8a6332ce0036fb185f6634f7d6a066526322827", Verified: true, Active: true},
	{Index: 15, Name: "DigiCert Global Root CA", SHA256: "4348a0e9444c78cb265e058d5e8944b4d84f9662bd26db257f8934a443c70161", SHA1: "a8985d3a65e5e5c4b2d7d66d40c6dd2fb19c5436", Verified: true, Active: true},
	{Index: 16, Name: "DigiCert Global Root G2", SHA256: "cb3ccbb76031e5e0138f8dd39a23f9de47ffc35e43c1144cea27d46a5ab1cb5f", SHA1: "df3c24f9bfd666761b268073fe06d1cc8d4f82a4", Verified: true, Active: true},
	{Index: 17, Name: "DigiCert Global Root G3 (ECDSA P-384)", SHA256: "31ad6648f8104138c738f39ea4320133393e3a18cc02296ef97c2ac9ef6731d0", SHA1: "7e04de896a3e666d00e687d33ffad93be83d349e", Verified: true, Active: true},
	{Index: 18, Name: "DigiCert Trusted Root G4", SHA256: "552f7bdcf1a7af9e6ce672017f4f12abf77240c78e761ac203d1d9d20ac89988", SHA1: "ddfb16cd4931c973a2037d3fc83a4d7d775d05e4", Verified: true, Active: true},
	{Index: 19, Name: "GlobalSign (reported as an RSA CA of 2018)", SHA256: "67540a47aa5b9f34570a99723cfefa96a96ee3f0d9b8bf4def9440b8065d665d", SHA1: "", Verified: false, Active: true},
	{Index: 20, Name: "(unidentified; only in the 24-hash sample)", SHA256: "a267c480b0b29056eb5e8aa7c93add804f5a7df516e969e77bcacafe8d456079", SHA1: "", Verified: false, Active: false},
	{Index: 21, Name: "GlobalSign (reported as an ECC CA of 2018)", SHA256: "7224395222cd588c4f2683716922addb41e39b581ac34fa87b39efa896fbb39e", SHA1: "", Verified: false, Active: true},
	{Index: 22, Name: "GlobalSign Root CA - R3", SHA256: "cbb522d7b7f127ad6a0113865bdf1cd4102e7d0759af635a7cf4720dc963c53b", SHA1: "d69b561148f01c77c54578c10926df5b856976ad", Verified: true, Active: true},
	{Index: 23, Name: "GlobalSign ECC Root CA - R5 (ECDSA P-384)", SHA256: "179fbc148a3dd00fd24ea13458cc43bfa7f59c8182d783a513f6ebec100c8924", SHA1: "1f24c630cda418ef2069ffad4fdd5f463a1b69aa", Verified: true, Active: true},
	{Index: 24, Name: "GlobalSign Root CA - R6", SHA256: "2cabeafe37d06ca22aba7391c0033d25982952c453647349763a3ab5ad6ccf69", SHA1: "8094640eb5a7a1ca119c1fddd59f810263a7fbd1", Verified: true, Active: true},
}

var older = []Entry{
	{Name: "VeriSign Class 3 Public Primary Certification Authority - G3", SHA256: "eb04cf5eb1f39afa762f2bb120f296cba520c1b97db1589565b81cb9a17b7244", SHA1: "132d0d45534b6997cdb2d5c339e25576609b5cc6", Verified: true},
	{Name: "VeriSign Class 3 Public Primary Certification Authority (G1)", SHA256: "e7685634efacf69ace939a6b255b7b4fabef42935b50a265acb5cb6027e44e70", SHA1: "742c3192e607e424eb4549542be1bbc53e6174e2", Verified: false},
	{Name: "VeriSign Class 3 (G2 or the 1996 \"G1.5\" reissue)", SHA256: "83ce3c1229688a593d485f81973c0f9195431eda37cc5e36430e79c7a888638b", SHA1: "", Verified: false},
	{Name: "VeriSign Class 3 (G1.5 or G2)", SHA256: "a4b6b3996fc2f306b3fd8681bd63413d8c5009cc4fa329c2ccf0e2fa1b140305", SHA1: "", Verified: false},
	{Name: "GTE CyberTrust Global Root", SHA256: "a53125188d2110aa964b02c7b7c6da3203170894e5fb71fffb6667d5e6810a36", SHA1: "", Verified: false},
}
