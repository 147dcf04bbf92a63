/** VM memory when none is asked for. */
export const OVA_DEFAULT_MEMORY_MIB = 512;

/** What the OVF descriptor of an aim OVA says about its one virtual machine and its disk. */
export interface OvfSpec {
  /** Virtual machine name (VirtualSystem id, Name, VirtualSystemIdentifier). */
  name: string;
  /** File name of the disk inside the OVA. */
  diskFile: string;
  /** Bytes of the disk file (References/File ovf:size). */
  diskFileBytes: number;
  /** Virtual size of the disk in bytes (DiskSection ovf:capacity). */
  capacityBytes: number;
  /** Bytes of the disk that hold data (DiskSection ovf:populatedSize). */
  populatedBytes: number;
  memoryMiB: number;
  cpus: number;
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** CIM's code and VMware's guest id for "Other Linux (64-bit)": what a generic Linux kernel boots as. */
const OS_CIM_ID = 101;
const VMW_OS_TYPE = 'otherLinux64Guest';
/** Virtual hardware version 14 (ESXi 6.7 and later): EFI, PVSCSI and VMXNET3 are all there. */
const HARDWARE = 'vmx-14';
const NETWORK = 'VM Network';

/**
 * The OVF 1.0 descriptor (the form vSphere exports and imports) of a VM booting the disk under
 * EFI firmware from a PVSCSI controller, with a VMXNET3 NIC on the "VM Network" network: the
 * devices the vmware platform's initramfs carries drivers for. rasd elements are in the order
 * the CIM schema's sequence requires (alphabetical).
 */
export function ovfDescriptor(spec: OvfSpec): string {
  const name = escapeXml(spec.name);
  return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="${escapeXml(spec.diskFile)}" ovf:id="file1" ovf:size="${spec.diskFileBytes}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="${spec.capacityBytes}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="${spec.populatedBytes}"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="${NETWORK}">
      <Description>The ${NETWORK} network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="${name}">
    <Info>A virtual machine built by aim</Info>
    <Name>${name}</Name>
    <OperatingSystemSection ovf:id="${OS_CIM_ID}" vmw:osType="${VMW_OS_TYPE}">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>${name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>${HARDWARE}</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>${spec.cpus} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>${spec.cpus}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>${spec.memoryMiB}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>${spec.memoryMiB}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>${NETWORK}</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on &quot;${NETWORK}&quot;</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
}
