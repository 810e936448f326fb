package main

// The licence a host reports (-licence-edition): govmomi's simulator always
// reports "Evaluation Mode" (simulator/license_manager.go EvalLicense). A free
// ESXi host reports edition key "esxBasic" (VMware's own check:
// lamw/vmware-scripts perl/checkESXiVersion.pl, "the free version will not
// allow you to perform any write operations"); an evaluation that has ended
// reports expirationHours 0. vmigrate reads these at preflight. The display
// name below is a guess (real free hosts say e.g. "VMware vSphere 7 Hypervisor").

import (
	"log"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

var licenceEdition string

func setupLicence() {
	if licenceEdition == "" {
		return
	}
	var info types.LicenseManagerLicenseInfo
	switch licenceEdition {
	case "free":
		info = types.LicenseManagerLicenseInfo{
			LicenseKey: "00000-00000-00000-00000-00000", EditionKey: "esxBasic",
			Name: "VMware vSphere 7 Hypervisor"}
	case "none": // a host that lists no licence (vmigrate falls back to a write probe)
		content := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content
		simulator.Map.Get(*content.LicenseManager).(*simulator.LicenseManager).Licenses = nil
		return
	case "eval-expired":
		info = simulator.EvalLicense
		info.Properties = append([]types.KeyAnyValue{}, info.Properties...)
		info.Properties = append(info.Properties, types.KeyAnyValue{Key: "expirationHours", Value: int32(0)})
	default:
		log.Fatalf("unknown -licence-edition %q (free, eval-expired or none)", licenceEdition)
	}
	content := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content
	lm := simulator.Map.Get(*content.LicenseManager).(*simulator.LicenseManager)
	lm.Licenses = []types.LicenseManagerLicenseInfo{info}
}
