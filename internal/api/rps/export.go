package rps

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"

	"gopkg.in/yaml.v3"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/store"
)

// The export document follows go-wsman-messages' pkg/config schema
// (config.Configuration), which rpc-go and Intel Console read, with RPS's
// extra wireless keys (pskPassphrase, ieee8021xProfileName) kept for readers
// of RPS's format. Unlike RPS (admin-api.md §11.10) amtd exports the real
// redirection settings, the CIRA settings, the proxies and the passphrases,
// and amtd's profile extensions (amtSpecific.powerPolicy, .userAcls without
// the users' passwords).
type exportDoc struct {
	ID            int            `yaml:"id"`
	Name          string         `yaml:"name"`
	Tags          []string       `yaml:"tags"`
	Configuration exportSettings `yaml:"configuration"`
}

type exportSettings struct {
	GeneralSettings struct {
		SharedFQDN              bool `yaml:"sharedFQDN"`
		NetworkInterfaceEnabled int  `yaml:"networkInterfaceEnabled"`
		PingResponseEnabled     bool `yaml:"pingResponseEnabled"`
	} `yaml:"generalSettings"`
	Network struct {
		Wired struct {
			DHCPEnabled    bool             `yaml:"dhcpEnabled"`
			IPSyncEnabled  bool             `yaml:"ipSyncEnabled"`
			SharedStaticIP bool             `yaml:"sharedStaticIP"`
			IPAddress      string           `yaml:"ipAddress"`
			SubnetMask     string           `yaml:"subnetMask"`
			DefaultGateway string           `yaml:"defaultGateway"`
			PrimaryDNS     string           `yaml:"primaryDNS"`
			SecondaryDNS   string           `yaml:"secondaryDNS"`
			Authentication string           `yaml:"authentication"`
			IEEE8021x      *exportIEEE8021x `yaml:"ieee8021x"`
		} `yaml:"wired"`
		Wireless struct {
			WiFiSyncEnabled     bool         `yaml:"wifiSyncEnabled"`
			UEFIWiFiSyncEnabled bool         `yaml:"uefiWiFiSyncEnabled"`
			Profiles            []exportWifi `yaml:"profiles"`
		} `yaml:"wireless"`
		Proxies []exportProxy `yaml:"proxy"`
	} `yaml:"network"`
	TLS struct {
		SigningAuthority     string   `yaml:"signingAuthority"`
		MutualAuthentication bool     `yaml:"mutualAuthentication"`
		Enabled              bool     `yaml:"enabled"`
		TrustedCN            []string `yaml:"trustedCN"`
		AllowNonTLS          bool     `yaml:"allowNonTLS"`
	} `yaml:"tls"`
	Redirection struct {
		Enabled  bool `yaml:"enabled"`
		Services struct {
			KVM  bool `yaml:"kvm"`
			SOL  bool `yaml:"sol"`
			IDER bool `yaml:"ider"`
		} `yaml:"services"`
		UserConsent string `yaml:"userConsent"`
	} `yaml:"redirection"`
	UserAccounts struct {
		UserAccounts []string `yaml:"userAccounts"`
	} `yaml:"userAccounts"`
	EnterpriseAssistant struct {
		URL      string `yaml:"url"`
		Username string `yaml:"username"`
		Password string `yaml:"password"`
	} `yaml:"enterpriseAssistant"`
	AMTSpecific struct {
		ControlMode                string     `yaml:"controlMode"`
		AdminPassword              string     `yaml:"adminPassword"`
		GenerateRandomPassword     bool       `yaml:"generateRandomPassword"`
		ProvisioningCert           string     `yaml:"provisioningCert"`
		ProvisioningCertPwd        string     `yaml:"provisioningCertPwd"`
		MEBXPassword               string     `yaml:"mebxPassword"`
		GenerateRandomMEBXPassword bool       `yaml:"generateRandomMEBXPassword"`
		CIRA                       exportCIRA `yaml:"cira"`
		// amtd extensions, without the users' passwords.
		PowerPolicy string        `yaml:"powerPolicy,omitempty"`
		UserACLs    []userACLJSON `yaml:"userAcls,omitempty"`
	} `yaml:"amtSpecific"`
	BMCSpecific     exportAdmin `yaml:"bmcSpecific"`
	DASHSpecific    exportAdmin `yaml:"dashSpecific"`
	RedfishSpecific exportAdmin `yaml:"redfishSpecific"`
}

type exportAdmin struct {
	AdminPassword string `yaml:"adminPassword"`
}

type exportIEEE8021x struct {
	ProfileName            string `yaml:"profileName"`
	Username               string `yaml:"username"`
	Password               string `yaml:"password"`
	AuthenticationProtocol int    `yaml:"authenticationProtocol"`
	ClientCert             string `yaml:"clientCert"`
	CACert                 string `yaml:"caCert"`
	PrivateKey             string `yaml:"privateKey"`
	PXETimeout             int    `yaml:"pxeTimeout"`
	WiredInterface         bool   `yaml:"wiredInterface"`
}

type exportWifi struct {
	ProfileName          string           `yaml:"profileName"`
	SSID                 string           `yaml:"ssid"`
	Password             string           `yaml:"password"`
	AuthenticationMethod int              `yaml:"authenticationMethod"`
	EncryptionMethod     int              `yaml:"encryptionMethod"`
	Priority             int              `yaml:"priority"`
	IEEE8021x            *exportIEEE8021x `yaml:"ieee8021x"`
	PSKPassphrase        string           `yaml:"pskPassphrase"`
	IEEE8021xProfileName *string          `yaml:"ieee8021xProfileName"`
}

type exportCIRA struct {
	MPSUsername            string   `yaml:"mpsUsername"`
	MPSPassword            string   `yaml:"mpsPassword"`
	MPSAddress             string   `yaml:"mpsAddress"`
	MPSPort                int      `yaml:"mpsPort"`
	MPSCert                string   `yaml:"mpsCert"`
	EnvironmentDetection   []string `yaml:"environmentDetection"`
	GenerateRandomPassword bool     `yaml:"generateRandomPassword"`
}

type exportProxy struct {
	Address          string `yaml:"address"`
	Port             int    `yaml:"port"`
	NetworkDNSSuffix string `yaml:"networkDnsSuffix"`
}

// exportNotFound is a missing object referenced by the exported profile.
type exportNotFound struct{ typ, name string }

func (e exportNotFound) Error() string { return e.typ + " " + e.name + " not found" }

func ieee8021xExport(c *store.IEEE8021xConfig) *exportIEEE8021x {
	x := &exportIEEE8021x{ProfileName: c.Name, AuthenticationProtocol: c.AuthenticationProtocol, WiredInterface: c.WiredInterface}
	if c.PXETimeout != nil {
		x.PXETimeout = *c.PXETimeout
	}
	return x
}

// buildExport assembles the export document of a profile.
func (h *handlers) buildExport(r *http.Request, p *store.Profile, domainName string) (*exportDoc, error) {
	ctx := r.Context()
	tenant := p.TenantID
	doc := &exportDoc{Name: p.Name, Tags: p.Tags}
	if doc.Tags == nil {
		doc.Tags = []string{}
	}
	c := &doc.Configuration

	wired := &c.Network.Wired
	wired.DHCPEnabled = p.DHCPEnabled
	wired.IPSyncEnabled = p.IPSyncEnabled != nil && *p.IPSyncEnabled
	wired.SharedStaticIP = !p.DHCPEnabled
	if p.IEEE8021xProfileName != nil && *p.IEEE8021xProfileName != "" {
		cfg, err := h.st.GetIEEE8021xConfig(ctx, tenant, *p.IEEE8021xProfileName)
		if err != nil {
			return nil, wrapNotFound(err, type8021x, *p.IEEE8021xProfileName)
		}
		wired.IEEE8021x = ieee8021xExport(cfg)
	}

	wl := &c.Network.Wireless
	wl.WiFiSyncEnabled = p.LocalWifiSyncEnabled != nil && *p.LocalWifiSyncEnabled
	wl.UEFIWiFiSyncEnabled = p.UEFIWifiSyncEnabled != nil && *p.UEFIWifiSyncEnabled
	wl.Profiles = []exportWifi{}
	for _, link := range p.WifiConfigs {
		wc, err := h.st.GetWirelessConfig(ctx, tenant, link.Name)
		if err != nil {
			return nil, wrapNotFound(err, typeWireless, link.Name)
		}
		sec, err := h.readSecret(ctx, tenant, kindWireless, wc.SecretID)
		if err != nil {
			return nil, err
		}
		x := exportWifi{ProfileName: wc.Name, SSID: wc.SSID, Password: sec[fieldPSK], PSKPassphrase: sec[fieldPSK],
			AuthenticationMethod: wc.AuthenticationMethod, EncryptionMethod: wc.EncryptionMethod, Priority: link.Priority,
			IEEE8021xProfileName: wc.IEEE8021xProfileName}
		if wc.IEEE8021xProfileName != nil && *wc.IEEE8021xProfileName != "" {
			cfg, err := h.st.GetIEEE8021xConfig(ctx, tenant, *wc.IEEE8021xProfileName)
			if err != nil {
				return nil, wrapNotFound(err, type8021x, *wc.IEEE8021xProfileName)
			}
			x.IEEE8021x = ieee8021xExport(cfg)
		}
		wl.Profiles = append(wl.Profiles, x)
	}
	c.Network.Proxies = []exportProxy{}
	for _, link := range p.ProxyConfigs {
		pc, err := h.st.GetProxyConfig(ctx, tenant, link.Name)
		if err != nil {
			return nil, wrapNotFound(err, typeProxy, link.Name)
		}
		c.Network.Proxies = append(c.Network.Proxies, exportProxy{Address: pc.Address, Port: pc.Port, NetworkDNSSuffix: pc.NetworkDNSSuffix})
	}

	c.TLS.TrustedCN = []string{}
	if p.TLSMode != nil {
		c.TLS.Enabled = true
		c.TLS.MutualAuthentication = *p.TLSMode == 3 || *p.TLSMode == 4
		c.TLS.AllowNonTLS = *p.TLSMode == 2 || *p.TLSMode == 4
		if p.TLSSigningAuthority != nil {
			c.TLS.SigningAuthority = *p.TLSSigningAuthority
		}
	}
	c.Redirection.Enabled = p.KVMEnabled || p.SOLEnabled || p.IDEREnabled
	c.Redirection.Services.KVM = p.KVMEnabled
	c.Redirection.Services.SOL = p.SOLEnabled
	c.Redirection.Services.IDER = p.IDEREnabled
	c.Redirection.UserConsent = p.UserConsent
	c.UserAccounts.UserAccounts = []string{}
	if p.TLSSigningAuthority != nil && *p.TLSSigningAuthority == "MicrosoftCA" {
		c.EnterpriseAssistant.URL = h.opts.EnterpriseAssistantURL
	}

	amt := &c.AMTSpecific
	amt.ControlMode = p.Activation
	amt.GenerateRandomPassword = p.GenerateRandomPassword
	amt.GenerateRandomMEBXPassword = p.GenerateRandomMEBxPassword
	amt.PowerPolicy = p.PowerPolicy
	amt.UserACLs = userACLsOut(p.UserACLs)
	sec, err := h.readSecret(ctx, tenant, kindProfile, p.SecretID)
	if err != nil {
		return nil, err
	}
	amt.AdminPassword = sec[fieldAMTPassword]
	amt.MEBXPassword = sec[fieldMEBxPassword]
	if p.Activation == activationACM && domainName != "" {
		d, err := h.st.GetDomain(ctx, tenant, domainName)
		if err != nil {
			return nil, wrapNotFound(err, typeDomain, domainName)
		}
		dsec, err := h.readSecret(ctx, tenant, kindDomain, d.SecretID)
		if err != nil {
			return nil, err
		}
		amt.ProvisioningCert = dsec[fieldCert]
		amt.ProvisioningCertPwd = dsec[fieldCertPassword]
	}
	amt.CIRA.EnvironmentDetection = []string{}
	if p.CIRAConfigName != nil && *p.CIRAConfigName != "" {
		cc, err := h.st.GetCIRAConfig(ctx, tenant, *p.CIRAConfigName)
		if err != nil {
			return nil, wrapNotFound(err, typeCIRA, *p.CIRAConfigName)
		}
		csec, err := h.readSecret(ctx, tenant, kindCIRA, cc.SecretID)
		if err != nil {
			return nil, err
		}
		amt.CIRA = exportCIRA{MPSUsername: cc.Username, MPSPassword: csec[fieldMPSPassword], MPSAddress: cc.MPSServerAddress,
			MPSPort: cc.MPSPort, MPSCert: cc.MPSRootCertificate, EnvironmentDetection: []string{},
			GenerateRandomPassword: csec[fieldMPSPassword] == ""}
	}
	return doc, nil
}

func wrapNotFound(err error, typ, name string) error {
	if errors.Is(err, store.ErrNotFound) {
		return exportNotFound{typ, name}
	}
	return err
}

// EncryptWithRandomKey encrypts plaintext as RPS's encryptWithRandomKey
// does (admin-api.md §9): key = base64 of 24 random bytes (32 characters),
// whose ASCII bytes are the AES-256-GCM key; content = base64(nonce(12) ‖
// ciphertext ‖ tag(16)).
func EncryptWithRandomKey(plaintext []byte) (content, key string, err error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	key = base64.StdEncoding.EncodeToString(raw)
	block, err := aes.NewCipher([]byte(key))
	if err != nil {
		return "", "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", "", err
	}
	sealed := gcm.Seal(nonce, nonce, plaintext, nil)
	return base64.StdEncoding.EncodeToString(sealed), key, nil
}

// DecryptExport reverses EncryptWithRandomKey (for tests and tools).
func DecryptExport(content, key string) ([]byte, error) {
	data, err := base64.StdEncoding.DecodeString(content)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher([]byte(key))
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(data) < gcm.NonceSize()+gcm.Overhead() {
		return nil, errors.New("export content too short")
	}
	return gcm.Open(nil, data[:gcm.NonceSize()], data[gcm.NonceSize():], nil)
}

func (h *handlers) exportProfile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	name := r.PathValue("profileName")
	p, err := h.st.GetProfile(ctx, tenant, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeAMT, name)
		return
	case err != nil:
		opFailed(w, r, name, err)
		return
	}
	doc, err := h.buildExport(r, p, r.URL.Query().Get("domainName"))
	var nf exportNotFound
	switch {
	case errors.As(err, &nf):
		notFound(w, r, nf.typ, nf.name)
		return
	case err != nil:
		opFailed(w, r, name, err)
		return
	}
	plain, err := yaml.Marshal(doc)
	if err != nil {
		opFailed(w, r, name, err)
		return
	}
	content, key, err := EncryptWithRandomKey(plain)
	clear(plain)
	if err != nil {
		opFailed(w, r, name, err)
		return
	}
	api.LoggerFrom(ctx).Info("exported AMT profile", "name", p.Name)
	w.Header().Set("Cache-Control", "no-store")
	api.WriteJSON(w, r, http.StatusOK, struct {
		Filename string `json:"filename"`
		Content  string `json:"content"`
		Key      string `json:"key"`
	}{p.Name + ".yaml", content, key})
}

// randomAMTPassword returns a random password of length n (8–32) meeting
// AMT's strong-password rule: upper, lower, digit and special characters.
func randomAMTPassword(n int) (string, error) {
	if n < 8 || n > 32 {
		return "", fmt.Errorf("password length %d out of range", n)
	}
	const (
		upper   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		lower   = "abcdefghijkmnopqrstuvwxyz"
		digits  = "23456789"
		special = "!@#$%^&*"
	)
	all := upper + lower + digits + special
	pick := func(set string) (byte, error) {
		i, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return 0, err
		}
		return set[i.Int64()], nil
	}
	for {
		b := make([]byte, n)
		for i := range b {
			c, err := pick(all)
			if err != nil {
				return "", err
			}
			b[i] = c
		}
		if s := string(b); IsStrongPassword(s) {
			return s, nil
		}
	}
}
