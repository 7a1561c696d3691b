"""A chat completion through the official OpenAI Python SDK, as a Python user writes it.

Usage: openai_stream.py BASE_URL REQUEST_JSON [HEADERS_JSON]
REQUEST_JSON holds the create() arguments; "stream": true iterates the stream. Prints one JSON
object: {"text", "usage"} on success, {"error": {"class", "message", "code", "type", "status"}}
when the SDK raised. The SDK's default retries stay on: the test counts what reached the model.
"""
import json
import sys

import openai


def main() -> None:
    base_url, request = sys.argv[1], json.loads(sys.argv[2])
    headers = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    client = openai.OpenAI(api_key="not-checked", base_url=base_url, default_headers=headers)
    try:
        if request.get("stream"):
            text, usage = "", None
            for chunk in client.chat.completions.create(**request):
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump()
        else:
            completion = client.chat.completions.create(**request)
            text = completion.choices[0].message.content
            usage = completion.usage.model_dump() if completion.usage else None
        print(json.dumps({"text": text, "usage": usage}))
    except openai.APIError as error:
        print(
            json.dumps(
                {
                    "error": {
                        "class": type(error).__name__,
                        "message": error.message,
                        "code": error.code,
                        "type": error.type,
                        "status": getattr(error, "status_code", None),
                    }
                }
            )
        )


if __name__ == "__main__":
    main()
