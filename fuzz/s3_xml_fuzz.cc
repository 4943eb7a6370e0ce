// S3 XML response parsers (backends/s3express/s3_xml.h): every document a server sends back.
// The first byte picks the parser, the rest is the body.
#include <cstdint>
#include <string>
#include <vector>

#include "backends/s3express/s3_xml.h"
#include "fuzz/fuzz_util.h"

using namespace stor::s3;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t which = data[0];
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (which % 8) {
    case 0: {
      ErrorDoc doc;
      (void)parse_error(body, &doc);
      break;
    }
    case 1: {
      auto page = parse_list_objects_v2(body);
      if (page.is_ok() && page->truncated)
        STOR_FUZZ_CHECK(!page->next_continuation_token.empty(), "truncated page without a token");
      break;
    }
    case 2: (void)parse_initiate_multipart_upload(body); break;
    case 3: (void)parse_complete_multipart_upload(body); break;
    case 4: (void)parse_copy_object(body); break;
    case 5: (void)parse_delete_result(body); break;
    case 6: (void)parse_create_session(body); break;
    case 7:
      // A timestamp alone, through the public parser that reads it (LastModified).
      (void)parse_list_objects_v2("<ListBucketResult><Contents><Key>k</Key><LastModified>" + body +
                                  "</LastModified></Contents></ListBucketResult>");
      break;
  }
  return 0;
}
