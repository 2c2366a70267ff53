package firmware

// IPS_OptInService.OptInRequired values.
const (
	OptInRequiredNone uint32 = 0
	OptInRequiredKVM  uint32 = 1
	OptInRequiredAll  uint32 = 4294967295
)

// OptInState values (IPS_OptInService.OptInState).
const (
	OptInStateNotStarted = 0
	OptInStateRequested  = 1
	OptInStateDisplayed  = 2
	OptInStateReceived   = 3
	OptInStateInSession  = 4
)

// RedirKind is a redirection session type.
type RedirKind int

// Redirection session types.
const (
	RedirSOL RedirKind = iota + 1
	RedirIDER
	RedirKVM
)

func (k RedirKind) String() string {
	switch k {
	case RedirSOL:
		return "SOL"
	case RedirIDER:
		return "IDER"
	case RedirKVM:
		return "KVM"
	}
	return "unknown"
}

// redirRuntime counts the redirection sessions in progress (volatile).
type redirRuntime struct {
	active [4]int // by RedirKind
}

// consentGivenLocked: the user typed the code shown on the screen and the
// consent has not expired.
func (f *Firmware) consentGivenLocked() bool {
	f.optInExpireLocked()
	return f.optIn.state == OptInStateReceived || f.optIn.state == OptInStateInSession
}

// ConsentRequired reports whether a session of this kind needs user consent
// now: KVM when OptInRequired is KVM or all, SOL and IDER when it is all.
func (f *Firmware) ConsentRequired(kind RedirKind) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.consentRequiredLocked(kind)
}

func (f *Firmware) consentRequiredLocked(kind RedirKind) bool {
	switch f.st.OptIn.Required {
	case OptInRequiredNone:
		return false
	case OptInRequiredKVM:
		return kind == RedirKVM
	}
	return true
}

// RedirectionEnabled reports whether the firmware offers a session type:
// the device is provisioned, the redirection listener is on, and the
// feature is enabled (AMT_RedirectionService.EnabledState bits for IDER and
// SOL, CIM_KVMRedirectionSAP for KVM).
func (f *Firmware) RedirectionEnabled(kind RedirKind) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.st.Redirection
	if f.st.ControlMode == ModePre || !r.ListenerEnabled {
		return false
	}
	switch kind {
	case RedirSOL:
		return r.EnabledState == 32770 || r.EnabledState == 32771
	case RedirIDER:
		return r.EnabledState == 32769 || r.EnabledState == 32771
	case RedirKVM:
		return r.KVMEnabled
	}
	return false
}

// BeginRedirection starts a session after its login: it checks user
// consent (ErrConsentRequired), moves the consent to "in session", counts
// the session and writes the audit record. end closes the session.
func (f *Firmware) BeginRedirection(kind RedirKind, by Initiator) (end func(), err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.consentRequiredLocked(kind) {
		if !f.consentGivenLocked() {
			return nil, ErrConsentRequired
		}
		f.optIn.state = OptInStateInSession
	}
	f.redir.active[kind]++
	open, closed, name := redirAuditIDs(kind)
	f.auditLocked(AuditRedirectionManager, open, by, nil, name+" session opened")
	f.persistLocked("redirection")
	done := false
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if done {
			return
		}
		done = true
		f.redir.active[kind]--
		if f.optIn.state == OptInStateInSession && f.redir.active[RedirSOL]+f.redir.active[RedirIDER]+f.redir.active[RedirKVM] == 0 {
			f.optIn = optInRuntime{} // the consent ends with the last session
		}
		f.auditLocked(AuditRedirectionManager, closed, by, nil, name+" session closed")
		f.persistLocked("redirection")
	}, nil
}

func redirAuditIDs(kind RedirKind) (open, closed int, name string) {
	switch kind {
	case RedirIDER:
		return 0, 1, "IDE-R"
	case RedirSOL:
		return 4, 5, "SOL"
	default:
		return 8, 9, "KVM"
	}
}

// RedirectionSessions is the number of sessions of a kind in progress.
func (f *Firmware) RedirectionSessions(kind RedirKind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if kind < RedirSOL || kind > RedirKVM {
		return 0
	}
	return f.redir.active[kind]
}
