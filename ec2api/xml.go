package ec2api

import (
	"encoding/xml"
	"time"
)

// Response types, with the element names of EC2's wire format. The names
// were checked against the deserializers of aws-sdk-go-v2 service/ec2
// v1.344.1; the aws CLI matches them case-sensitively and drops what it does
// not recognise, so a mis-cased name is a silently missing field.

// Namespace is the XML namespace of EC2 API version 2016-11-15.
const Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// APIVersion is the Version parameter clients send.
const APIVersion = "2016-11-15"

// Meta is embedded first in every response; the dispatcher fills in the
// request ID.
type Meta struct {
	RequestID string `xml:"requestId"`
}

// SetRequestID lets the dispatcher stamp any response that embeds Meta.
func (m *Meta) SetRequestID(id string) { m.RequestID = id }

// Set is an EC2 list: <name><item>…</item>…</name>. It always writes its
// element, empty or not, as EC2 does for the lists of a response; use it
// with ",omitempty" where EC2 leaves an empty list out.
type Set[T any] []T

func (s Set[T]) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	item := xml.StartElement{Name: xml.Name{Local: "item"}}
	for i := range s {
		if err := e.EncodeElement(&s[i], item); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// UnmarshalXML reads the items back, for tests and for fairlease's own
// clients of a partner site.
func (s *Set[T]) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var w struct {
		Items []T `xml:"item"`
	}
	if err := d.DecodeElement(&w, &start); err != nil {
		return err
	}
	*s = w.Items
	return nil
}

// Time is an EC2 timestamp: UTC, ISO 8601 with milliseconds
// (2026-01-02T15:04:05.000Z), which both clients parse.
type Time time.Time

const timeFormat = "2006-01-02T15:04:05.000Z"

func (t Time) MarshalText() ([]byte, error) {
	return []byte(time.Time(t).UTC().Format(timeFormat)), nil
}

func (t *Time) UnmarshalText(b []byte) error {
	v, err := time.Parse(time.RFC3339, string(b))
	if err != nil {
		return err
	}
	*t = Time(v)
	return nil
}

// Instance states, with EC2's codes.
var (
	StatePending      = InstanceState{Code: 0, Name: "pending"}
	StateRunning      = InstanceState{Code: 16, Name: "running"}
	StateShuttingDown = InstanceState{Code: 32, Name: "shutting-down"}
	StateTerminated   = InstanceState{Code: 48, Name: "terminated"}
	StateStopping     = InstanceState{Code: 64, Name: "stopping"}
	StateStopped      = InstanceState{Code: 80, Name: "stopped"}
)

type InstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type Placement struct {
	AvailabilityZone string `xml:"availabilityZone"`
	Tenancy          string `xml:"tenancy,omitempty"`
}

type GroupIdentifier struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type StateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type Instance struct {
	InstanceID       string        `xml:"instanceId"`
	ImageID          string        `xml:"imageId"`
	InstanceState    InstanceState `xml:"instanceState"`
	PrivateDNSName   string        `xml:"privateDnsName"`
	DNSName          string        `xml:"dnsName"`
	Reason           string        `xml:"reason"`
	KeyName          string        `xml:"keyName,omitempty"`
	AMILaunchIndex   int           `xml:"amiLaunchIndex"`
	InstanceType     string        `xml:"instanceType"`
	LaunchTime       Time          `xml:"launchTime"`
	Placement        Placement     `xml:"placement"`
	PrivateIPAddress string        `xml:"privateIpAddress,omitempty"`
	IPAddress        string        `xml:"ipAddress,omitempty"`
	StateReason      *StateReason  `xml:"stateReason"`
	Architecture     string        `xml:"architecture,omitempty"`
	RootDeviceType   string        `xml:"rootDeviceType,omitempty"`
	// VirtualizationType is "hvm" for every VM fairlease runs.
	VirtualizationType string               `xml:"virtualizationType,omitempty"`
	Hypervisor         string               `xml:"hypervisor,omitempty"`
	ClientToken        string               `xml:"clientToken,omitempty"`
	GroupSet           Set[GroupIdentifier] `xml:"groupSet"`
	TagSet             Set[Tag]             `xml:"tagSet,omitempty"`
}

type Reservation struct {
	ReservationID string               `xml:"reservationId"`
	OwnerID       string               `xml:"ownerId"`
	RequesterID   string               `xml:"requesterId,omitempty"`
	GroupSet      Set[GroupIdentifier] `xml:"groupSet"`
	InstancesSet  Set[Instance]        `xml:"instancesSet"`
}

// RunInstancesResponse is a reservation at the top level, as EC2 sends it.
type RunInstancesResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ RunInstancesResponse"`
	Meta
	Reservation
}

type DescribeInstancesResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstancesResponse"`
	Meta
	ReservationSet Set[Reservation] `xml:"reservationSet"`
	NextToken      string           `xml:"nextToken,omitempty"`
}

type InstanceStateChange struct {
	InstanceID    string        `xml:"instanceId"`
	CurrentState  InstanceState `xml:"currentState"`
	PreviousState InstanceState `xml:"previousState"`
}

type TerminateInstancesResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ TerminateInstancesResponse"`
	Meta
	InstancesSet Set[InstanceStateChange] `xml:"instancesSet"`
}

// EventLeaseEnd is the event code of a lease's end in DescribeInstanceStatus.
// instance-retirement is the only EC2 event after which the instance is gone
// for good (an instance-store instance is terminated at notBefore), which is
// what a lease end does; instance-stop would promise a restartable instance
// and system-maintenance an instance that comes back.
const EventLeaseEnd = "instance-retirement"

type InstanceStatusEvent struct {
	InstanceEventID string `xml:"instanceEventId,omitempty"`
	Code            string `xml:"code"`
	Description     string `xml:"description"`
	NotBefore       Time   `xml:"notBefore"`
	NotAfter        *Time  `xml:"notAfter"`
}

type InstanceStatusDetails struct {
	Name   string `xml:"name"` // "reachability"
	Status string `xml:"status"`
}

// InstanceStatusSummary is the systemStatus/instanceStatus of an instance:
// Status is ok, impaired, initializing, insufficient-data or not-applicable.
type InstanceStatusSummary struct {
	Status  string                     `xml:"status"`
	Details Set[InstanceStatusDetails] `xml:"details"`
}

type InstanceStatus struct {
	InstanceID       string                   `xml:"instanceId"`
	AvailabilityZone string                   `xml:"availabilityZone"`
	EventsSet        Set[InstanceStatusEvent] `xml:"eventsSet,omitempty"`
	InstanceState    InstanceState            `xml:"instanceState"`
	SystemStatus     InstanceStatusSummary    `xml:"systemStatus"`
	InstanceStatus   InstanceStatusSummary    `xml:"instanceStatus"`
}

type DescribeInstanceStatusResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstanceStatusResponse"`
	Meta
	InstanceStatusSet Set[InstanceStatus] `xml:"instanceStatusSet"`
	NextToken         string              `xml:"nextToken,omitempty"`
}

type Image struct {
	ImageID            string   `xml:"imageId"`
	ImageLocation      string   `xml:"imageLocation"`
	ImageState         string   `xml:"imageState"` // available, pending, deregistered, failed
	ImageOwnerID       string   `xml:"imageOwnerId"`
	CreationDate       Time     `xml:"creationDate"`
	IsPublic           bool     `xml:"isPublic"`
	Architecture       string   `xml:"architecture"`
	ImageType          string   `xml:"imageType"` // machine
	Name               string   `xml:"name"`
	Description        string   `xml:"description,omitempty"`
	RootDeviceType     string   `xml:"rootDeviceType"`
	RootDeviceName     string   `xml:"rootDeviceName,omitempty"`
	VirtualizationType string   `xml:"virtualizationType"`
	Hypervisor         string   `xml:"hypervisor,omitempty"`
	TagSet             Set[Tag] `xml:"tagSet,omitempty"`
}

type DescribeImagesResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeImagesResponse"`
	Meta
	ImagesSet Set[Image] `xml:"imagesSet"`
	NextToken string     `xml:"nextToken,omitempty"`
}

type RegisterImageResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ RegisterImageResponse"`
	Meta
	ImageID string `xml:"imageId"`
}

type DeregisterImageResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DeregisterImageResponse"`
	Meta
	Return bool `xml:"return"`
}

type VCPUInfo struct {
	DefaultVCPUs          int `xml:"defaultVCpus"`
	DefaultCores          int `xml:"defaultCores,omitempty"`
	DefaultThreadsPerCore int `xml:"defaultThreadsPerCore,omitempty"`
}

type MemoryInfo struct {
	SizeInMiB int64 `xml:"sizeInMiB"`
}

type ProcessorInfo struct {
	SupportedArchitectures Set[string] `xml:"supportedArchitectures"`
}

type InstanceTypeInfo struct {
	InstanceType                 string        `xml:"instanceType"`
	CurrentGeneration            bool          `xml:"currentGeneration"`
	FreeTierEligible             bool          `xml:"freeTierEligible"`
	SupportedUsageClasses        Set[string]   `xml:"supportedUsageClasses"`
	SupportedRootDeviceTypes     Set[string]   `xml:"supportedRootDeviceTypes"`
	SupportedVirtualizationTypes Set[string]   `xml:"supportedVirtualizationTypes"`
	BareMetal                    bool          `xml:"bareMetal"`
	Hypervisor                   string        `xml:"hypervisor,omitempty"`
	ProcessorInfo                ProcessorInfo `xml:"processorInfo"`
	VCPUInfo                     VCPUInfo      `xml:"vCpuInfo"`
	MemoryInfo                   MemoryInfo    `xml:"memoryInfo"`
}

type DescribeInstanceTypesResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstanceTypesResponse"`
	Meta
	InstanceTypeSet Set[InstanceTypeInfo] `xml:"instanceTypeSet"`
	NextToken       string                `xml:"nextToken,omitempty"`
}

type CreateKeyPairResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ CreateKeyPairResponse"`
	Meta
	KeyName        string   `xml:"keyName"`
	KeyFingerprint string   `xml:"keyFingerprint"`
	KeyMaterial    string   `xml:"keyMaterial"`
	KeyPairID      string   `xml:"keyPairId"`
	TagSet         Set[Tag] `xml:"tagSet,omitempty"`
}

type ImportKeyPairResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ ImportKeyPairResponse"`
	Meta
	KeyName        string   `xml:"keyName"`
	KeyFingerprint string   `xml:"keyFingerprint"`
	KeyPairID      string   `xml:"keyPairId"`
	TagSet         Set[Tag] `xml:"tagSet,omitempty"`
}

type KeyPairInfo struct {
	KeyPairID      string   `xml:"keyPairId"`
	KeyName        string   `xml:"keyName"`
	KeyFingerprint string   `xml:"keyFingerprint"`
	KeyType        string   `xml:"keyType,omitempty"` // rsa, ed25519
	PublicKey      string   `xml:"publicKey,omitempty"`
	CreateTime     *Time    `xml:"createTime"`
	TagSet         Set[Tag] `xml:"tagSet,omitempty"`
}

type DescribeKeyPairsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeKeyPairsResponse"`
	Meta
	KeySet Set[KeyPairInfo] `xml:"keySet"`
}

type DeleteKeyPairResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DeleteKeyPairResponse"`
	Meta
	Return    bool   `xml:"return"`
	KeyPairID string `xml:"keyPairId,omitempty"`
}

type CreateTagsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ CreateTagsResponse"`
	Meta
	Return bool `xml:"return"`
}

type DeleteTagsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DeleteTagsResponse"`
	Meta
	Return bool `xml:"return"`
}

type TagDescription struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"` // instance, image, key-pair
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

type DescribeTagsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeTagsResponse"`
	Meta
	TagSet    Set[TagDescription] `xml:"tagSet"`
	NextToken string              `xml:"nextToken,omitempty"`
}

type AvailabilityZoneInfo struct {
	ZoneName           string `xml:"zoneName"`
	ZoneState          string `xml:"zoneState"` // available
	RegionName         string `xml:"regionName"`
	ZoneID             string `xml:"zoneId"`
	ZoneType           string `xml:"zoneType"` // availability-zone
	OptInStatus        string `xml:"optInStatus"`
	GroupName          string `xml:"groupName"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
}

type DescribeAvailabilityZonesResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeAvailabilityZonesResponse"`
	Meta
	AvailabilityZoneInfo Set[AvailabilityZoneInfo] `xml:"availabilityZoneInfo"`
}

type RegionInfo struct {
	RegionName     string `xml:"regionName"`
	RegionEndpoint string `xml:"regionEndpoint"`
	OptInStatus    string `xml:"optInStatus"`
}

type DescribeRegionsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeRegionsResponse"`
	Meta
	RegionInfo Set[RegionInfo] `xml:"regionInfo"`
}
