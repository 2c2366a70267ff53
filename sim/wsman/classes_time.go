package wsman

import (
	"strconv"

	"github.com/amtd-project/amtd/sim/firmware"
)

// ---- AMT_TimeSynchronizationService ----

func timeSynchronization() *Class {
	return &Class{
		Name: "AMT_TimeSynchronizationService",
		Instances: func(c *Call) ([]*Instance, error) {
			in := service(NewInstance("AMT_TimeSynchronizationService"), "Intel(r) AMT Time Synchronization Service").
				I("EnabledState", 5).I("LocalTimeSyncEnabled", 0).I("RequestedState", 12).I("TimeSource", 0)
			return []*Instance{in}, nil
		},
		Methods: map[string]Method{
			"GetLowAccuracyTimeSynch": func(c *Call) (*Output, error) {
				return (&Output{}).With("Ta0", strconv.FormatInt(c.FW.Now().Unix(), 10)), nil
			},
			"SetHighAccuracyTimeSynch": func(c *Call) (*Output, error) {
				ta0, ok0 := c.IntParam("Ta0")
				tm1, ok1 := c.IntParam("Tm1")
				tm2, ok2 := c.IntParam("Tm2")
				if !ok0 || !ok1 || !ok2 || ta0 <= 0 || tm1 <= 0 || tm2 < tm1 {
					return RV(firmware.PTInvalidParameter), nil
				}
				// the device clock becomes the server's Tm2 (transfer time neglected)
				offset := tm2 - c.FW.SystemNow().Unix()
				err := c.FW.Update(func(s *S) error { s.ClockOffsetSeconds = offset; return nil })
				return RV(firmware.PTSuccess), err
			},
		},
	}
}
