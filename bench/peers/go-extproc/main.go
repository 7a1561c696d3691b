// A reference ext_proc server for `make bench` configurations f and f_d: Go, google.golang.org/grpc
// and go-control-plane's generated types. By default it does what the guard does in configuration
// b (annotate the request and the response with x-guard-route, ask for response headers with
// mode_override) and nothing else. With -bodies it also asks for what the guard asks for in d (the
// buffered request body and the buffered response body) and answers each body unchanged. It shows
// what the ext_proc round trips cost with a compiled server that does no work, so the guard's own
// share of the added latency can be told apart from the protocol's.
//
// With -stream it exchanges the messages the guard exchanges for a streamed answer whose model a
// contract binds (`make bench-streaming`): the buffered request body (the guard reads the model
// from it), the response headers, and for a text/event-stream answer a mode_override to
// FULL_DUPLEX_STREAMED with the trailers sent, then every body chunk echoed back unchanged as a
// streamed_response with the same end_of_stream (and the trailers answered), with no work done.
package main

import (
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extproc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

type passThrough struct {
	extproc.UnimplementedExternalProcessorServer
	bodies bool
	stream bool
}

func annotated() *extproc.HeadersResponse {
	return &extproc.HeadersResponse{Response: &extproc.CommonResponse{HeaderMutation: &extproc.HeaderMutation{
		SetHeaders: []*core.HeaderValueOption{{Header: &core.HeaderValue{Key: "x-guard-route", RawValue: []byte("chat")}}},
	}}}
}

func (p passThrough) mode() *filter.ProcessingMode {
	if p.stream {
		// What the guard asks for when a contract names models: the request body for the model.
		return &filter.ProcessingMode{RequestBodyMode: filter.ProcessingMode_BUFFERED, ResponseHeaderMode: filter.ProcessingMode_SEND}
	}
	if !p.bodies {
		return &filter.ProcessingMode{ResponseHeaderMode: filter.ProcessingMode_SEND}
	}
	return &filter.ProcessingMode{
		RequestBodyMode:    filter.ProcessingMode_BUFFERED,
		ResponseHeaderMode: filter.ProcessingMode_SEND,
		ResponseBodyMode:   filter.ProcessingMode_BUFFERED,
	}
}

func (p passThrough) Process(stream extproc.ExternalProcessor_ProcessServer) error {
	for {
		request, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch request.Request.(type) {
		case *extproc.ProcessingRequest_RequestHeaders:
			err = stream.Send(&extproc.ProcessingResponse{
				Response:     &extproc.ProcessingResponse_RequestHeaders{RequestHeaders: annotated()},
				ModeOverride: p.mode(),
			})
		case *extproc.ProcessingRequest_RequestBody:
			err = stream.Send(&extproc.ProcessingResponse{Response: &extproc.ProcessingResponse_RequestBody{RequestBody: &extproc.BodyResponse{}}})
		case *extproc.ProcessingRequest_ResponseHeaders:
			response := &extproc.ProcessingResponse{Response: &extproc.ProcessingResponse_ResponseHeaders{ResponseHeaders: annotated()}}
			if p.stream {
				headers := request.GetResponseHeaders()
				if headers.GetEndOfStream() || !isEventStream(headers.GetHeaders()) {
					return stream.Send(response)
				}
				// The guard's #responseMode for a stream: full duplex, trailers sent.
				response.ModeOverride = &filter.ProcessingMode{
					RequestBodyMode:     filter.ProcessingMode_BUFFERED,
					ResponseHeaderMode:  filter.ProcessingMode_SEND,
					ResponseBodyMode:    filter.ProcessingMode_FULL_DUPLEX_STREAMED,
					ResponseTrailerMode: filter.ProcessingMode_SEND,
				}
				err = stream.Send(response)
				break
			}
			if !p.bodies || request.GetResponseHeaders().GetEndOfStream() {
				// The exchange is complete: returning sends the OK status, as the guard does.
				return stream.Send(response)
			}
			err = stream.Send(response)
		case *extproc.ProcessingRequest_ResponseBody:
			if p.stream {
				body := request.GetResponseBody()
				err = stream.Send(&extproc.ProcessingResponse{Response: &extproc.ProcessingResponse_ResponseBody{ResponseBody: &extproc.BodyResponse{
					Response: &extproc.CommonResponse{BodyMutation: &extproc.BodyMutation{Mutation: &extproc.BodyMutation_StreamedResponse{
						StreamedResponse: &extproc.StreamedBodyResponse{Body: body.GetBody(), EndOfStream: body.GetEndOfStream()},
					}}},
				}}})
				if err != nil || body.GetEndOfStream() {
					return err
				}
				break
			}
			return stream.Send(&extproc.ProcessingResponse{Response: &extproc.ProcessingResponse_ResponseBody{ResponseBody: &extproc.BodyResponse{}}})
		case *extproc.ProcessingRequest_ResponseTrailers:
			// A stream whose last chunk did not end it ends with the trailers.
			return stream.Send(&extproc.ProcessingResponse{Response: &extproc.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extproc.TrailersResponse{}}})
		default:
			err = errors.New("unexpected ext_proc message: the peer asks only for headers, bodies and response trailers")
		}
		if err != nil {
			return err
		}
	}
}

func main() {
	address := flag.String("addr", "127.0.0.1:50099", "listen address (host:port)")
	bodies := flag.Bool("bodies", false, "also ask for the buffered request and response bodies (configuration f_d)")
	streamed := flag.Bool("stream", false, "the guard's exchange for a streamed answer: buffered request body, then an event stream full duplex, every chunk echoed (make bench-streaming)")
	flag.Parse()
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatal(err)
	}
	server := grpc.NewServer()
	extproc.RegisterExternalProcessorServer(server, passThrough{bodies: *bodies, stream: *streamed})
	healthpb.RegisterHealthServer(server, health.NewServer())
	log.Fatal(server.Serve(listener))
}

func isEventStream(headers *core.HeaderMap) bool {
	for _, header := range headers.GetHeaders() {
		if strings.EqualFold(header.GetKey(), "content-type") {
			value := header.GetValue()
			if value == "" {
				value = string(header.GetRawValue())
			}
			return strings.HasPrefix(strings.ToLower(strings.TrimSpace(value)), "text/event-stream")
		}
	}
	return false
}
