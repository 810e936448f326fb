// Distributed ports and connected NICs (issue 11 item 6; see questions.go and
// tests/peers/README.md, section "issue 11 item 6"): a registered VM's NICs get
// the distributed port its .vmx names; after a power-on each NIC's connected
// state is set, down when another VM's NIC holds the same port key.
package main

import (
	"fmt"
	"log"
	"os"
	"path"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func vmxEntries(vm *simulator.VirtualMachine) map[string]string {
	var p string
	simulator.Map.WithLock(vm, func() { p = vm.Config.Files.VmPathName })
	ds := ""
	if i := strings.Index(p, "] "); strings.HasPrefix(p, "[") && i > 0 {
		ds, p = p[1:i], p[i+2:]
	}
	out := map[string]string{}
	for _, e := range simulator.Map.All("Datastore") {
		d, ok := e.(*simulator.Datastore)
		if !ok || d.Name != ds {
			continue
		}
		data, err := os.ReadFile(path.Join(d.Info.GetDatastoreInfo().Url, p))
		if err != nil {
			return out
		}
		for _, line := range strings.Split(string(data), "\n") {
			if m := qVmxLine.FindStringSubmatch(line); m != nil {
				out[strings.ToLower(m[1])] = m[2]
			}
		}
	}
	return out
}

// dvsFromVmx gives NIC n of a registered VM the distributed port its .vmx names.
func dvsFromVmx(vm *simulator.VirtualMachine) {
	e := vmxEntries(vm)
	simulator.Map.WithLock(vm, func() {
		for n := 0; n < 10; n++ {
			p := fmt.Sprintf("ethernet%d.", n)
			sw := e[p+"dvs.switchid"]
			if !strings.EqualFold(e[p+"present"], "true") || sw == "" {
				continue
			}
			backing := &types.VirtualEthernetCardDistributedVirtualPortBackingInfo{
				Port: types.DistributedVirtualSwitchPortConnection{
					SwitchUuid: sw, PortgroupKey: e[p+"dvs.portgroupid"], PortKey: e[p+"dvs.portid"]},
			}
			key := int32(4000 + n)
			found := false
			for _, d := range vm.Config.Hardware.Device {
				if c, ok := d.(types.BaseVirtualEthernetCard); ok && c.GetVirtualEthernetCard().Key == key {
					c.GetVirtualEthernetCard().Backing = backing
					found = true
				}
			}
			if !found {
				started := !strings.EqualFold(e[p+"startconnected"], "false")
				nic := &types.VirtualVmxnet3{VirtualVmxnet: types.VirtualVmxnet{VirtualEthernetCard: types.VirtualEthernetCard{
					VirtualDevice: types.VirtualDevice{
						Key:         key,
						DeviceInfo:  &types.Description{Label: fmt.Sprintf("Network adapter %d", n+1), Summary: sw},
						Backing:     backing,
						Connectable: &types.VirtualDeviceConnectInfo{StartConnected: started},
					},
					AddressType: "assigned",
					MacAddress:  strings.ToLower(e[p+"generatedaddress"]),
				}}}
				vm.Config.Hardware.Device = append(vm.Config.Hardware.Device, nic)
			}
		}
	})
}

// portOwners: "<switch>/<port key>" -> VM name, for every other VM's NIC bound to a port.
func portOwners(self types.ManagedObjectReference) map[string]string {
	out := map[string]string{}
	eachOtherNic(self, func(owner string, card *types.VirtualEthernetCard) {
		b, ok := card.Backing.(*types.VirtualEthernetCardDistributedVirtualPortBackingInfo)
		if ok && b.Port.PortKey != "" {
			out[b.Port.SwitchUuid+"/"+b.Port.PortKey] = owner
		}
	})
	return out
}

// connectNics sets each NIC's connected state once the VM runs.
func connectNics(vm *simulator.VirtualMachine) {
	owners := portOwners(vm.Self)
	simulator.Map.WithLock(vm, func() {
		for _, card := range nicsOf(vm) {
			if card.Connectable == nil {
				continue
			}
			conn := *card.Connectable
			conn.Connected = conn.StartConnected
			if b, ok := card.Backing.(*types.VirtualEthernetCardDistributedVirtualPortBackingInfo); ok && b.Port.PortKey != "" {
				if owner, taken := owners[b.Port.SwitchUuid+"/"+b.Port.PortKey]; taken {
					log.Printf("power-on %s: NIC %d: port %s of switch %s belongs to VM %s: not connected",
						vm.Name, card.Key, b.Port.PortKey, b.Port.SwitchUuid, owner)
					conn.Connected = false
				}
			}
			card.Connectable = &conn
		}
	})
}
