package agent

import (
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestAPIServerAddresses(t *testing.T) {
	port, https, other := int32(6443), "https", "metrics"
	yes, no := true, false
	eps := []*discoveryv1.EndpointSlice{
		{
			Ports: []discoveryv1.EndpointPort{{Name: &other, Port: new(int32)}, {Name: &https, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
				{Addresses: []string{"10.0.0.1"}}, // no condition: ready
				{Addresses: []string{"10.0.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &no}}, // leaving
			},
		},
		{
			Ports:     []discoveryv1.EndpointPort{{Name: &https, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"fd00::1", "10.0.0.1"}}},
		},
		{Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.9"}}}}, // no port
	}
	got := apiserverAddresses(eps)
	want := []string{"10.0.0.1:6443", "10.0.0.2:6443", "[fd00::1]:6443"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
